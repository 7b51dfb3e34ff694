// The visit page: device check → (clients) waiting room → the visit: a simulcast video grid
// with the active speaker larger, microphone/camera/screen share, chat with attachments, the
// participants ("X for Y"), recording with consent, connection quality, leave/end, and the
// feedback link at the end. Plain ES modules on the mediasrv browser SDK.
import { Client } from '/client/mediasrv-client.js';
import { announce, boot, fmt, h, postJson } from './common.js';

const data = boot();
const T = data.texts;
const seat = data.seat;
const visit = data.appointment;
const app = /** @type {HTMLElement} */ (document.getElementById('app'));
const announcer = document.getElementById('announcer');
const say = (/** @type {string} */ text) => announce(announcer, text);

/** @type {MediaStream|null} */
let media = null;
/** @type {Client|null} */
let client = null;
let ended = false;
let leaving = false;
/** @type {MediaStreamTrack|null} */
let screenTrack = null;
const state = { audio: true, video: true, screen: false };

// ---- 1. device check ----

async function measureConnection() {
  const times = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    const response = await fetch('/visit/api/ping', { cache: 'no-store' });
    if (!response.ok) throw new Error(String(response.status));
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[1]);
}

function deviceCheck() {
  const preview = h('video', { class: 'preview', autoplay: true, muted: true, playsInline: true, 'aria-label': T.camera_preview });
  const meter = h('meter', { id: 'mic-meter', class: 'meter', min: 0, max: 100, value: 0, low: 5, optimum: 50 });
  const cameraLine = h('li', { id: 'check-camera' }, `${T.camera_preview}: ${T.checking}`);
  const micLine = h('li', { id: 'check-mic' }, `${T.microphone_level}: ${T.checking}`);
  const netLine = h('li', { id: 'check-connection' }, `${T.connection_test}: ${T.checking}`);
  const go = h('button', { id: 'continue', type: 'button', disabled: true },
    seat.professional ? T.start_visit : T.continue_to_waiting);
  const acting = seat.actingFor
    ? h('p', { id: 'acting', class: 'notice' }, `${T.join_as} ${fmt(T, 'join_for', { name: seat.actingForName || '?' })}`)
    : null;
  app.replaceChildren(h('section', { 'aria-labelledby': 'check-h' },
    h('h2', { id: 'check-h' }, T.device_check),
    preview,
    h('label', { for: 'mic-meter' }, T.microphone_level), meter,
    h('div', { role: 'status', 'aria-live': 'polite' }, h('ul', { class: 'checks' }, cameraLine, micLine, netLine)),
    acting, go));
  let micHeard = false;
  (async () => {
    try {
      media = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: data.video.width }, height: { ideal: data.video.height } },
      });
      preview.srcObject = media;
      cameraLine.textContent = `${T.camera_preview}: ${T.camera_ok}`;
      const context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 512;
      context.createMediaStreamSource(media).connect(analyser);
      const samples = new Uint8Array(analyser.fftSize);
      const timer = setInterval(() => {
        if (!document.body.contains(meter)) {
          clearInterval(timer);
          context.close();
          return;
        }
        analyser.getByteTimeDomainData(samples);
        let peak = 0;
        for (const s of samples) peak = Math.max(peak, Math.abs(s - 128));
        meter.value = Math.min(100, Math.round((peak / 128) * 200));
        if (!micHeard && peak > 2) {
          micHeard = true;
          micLine.textContent = `${T.microphone_level}: ${T.mic_ok}`;
        }
      }, 100);
      context.resume().catch(() => {});
    } catch (error) {
      cameraLine.textContent = fmt(T, 'camera_failed', { error: String(/** @type {any} */ (error).message || error) });
    }
    try {
      const ms = await measureConnection();
      netLine.textContent = `${T.connection_test}: ${fmt(T, 'connection_ok', { ms })}`;
    } catch {
      netLine.textContent = `${T.connection_test}: ${T.connection_failed}`;
    }
    go.disabled = false;
  })();
  go.addEventListener('click', () => (seat.professional ? joinVisit() : waitingRoom()));
}

// ---- 2. waiting room (clients) ----

function waitingRoom() {
  const line = h('p', { id: 'waiting-status', role: 'status', 'aria-live': 'polite' }, T.waiting);
  app.replaceChildren(h('section', { 'aria-labelledby': 'wait-h' },
    h('h2', { id: 'wait-h' }, T.waiting_room), line));
  const url = `/visit/api/visits/${visit.id}/wait?p=${encodeURIComponent(seat.participant)}`;
  const source = new EventSource(url);
  source.onmessage = (event) => {
    const entry = JSON.parse(event.data);
    if (entry.state === 'waiting') line.textContent = T.waiting;
    else if (entry.state === 'held') line.textContent = fmt(T, 'held', { message: entry.message });
    else if (entry.state === 'denied') line.textContent = fmt(T, 'denied', { message: entry.message });
    else if (entry.state === 'ended') {
      line.textContent = T.visit_over;
      source.close();
    } else if (entry.state === 'admitted') {
      line.textContent = T.admitted;
      source.close();
      joinVisit();
    }
  };
}

// ---- 3. the visit ----

const grid = h('div', { class: 'grid', id: 'grid' });
const peopleList = h('ul', { class: 'people', id: 'people' });
const peopleHeading = h('h2', { id: 'people-h' }, '');
const messages = h('ul', { class: 'messages', id: 'messages' });
const recordingBadge = h('span', { id: 'recording', class: 'recording', hidden: true }, `● ${T.recording_on}`);
const quality = h('span', { id: 'quality', class: 'quality', 'data-level': 'unknown' }, `${T.quality}: ${T.quality_unknown}`);
const lobbyList = h('ul', { class: 'lobby', id: 'lobby' });
/** @type {Map<string, {figure: HTMLElement, video: HTMLVideoElement, caption: HTMLElement, peerId: string, consumerId: string}>} */
const tiles = new Map(); // by producer id (the local camera: 'local')
/** @type {Map<string, HTMLAudioElement>} */
const audios = new Map(); // by consumer id
const peerStates = new Map();

function peerName(peerId) {
  if (client && peerId === client.peerId) return `${seat.name} (${T.you})`;
  const peer = client?.peers.find((p) => p.id === peerId);
  return peer ? peer.displayName : '?';
}

function stateText(peerId) {
  const s = peerStates.get(peerId);
  if (!s) return '';
  return [s.audio === false ? T.muted : '', s.video === false ? T.camera_is_off : ''].filter(Boolean).join(', ');
}

function makeTile(key, peerId, stream, muted) {
  const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsInline: true, muted, 'aria-hidden': 'true' }));
  video.srcObject = stream;
  const caption = h('figcaption', {}, h('span', { class: 'name' }, peerName(peerId)), h('span', { class: 'state' }, stateText(peerId)));
  const figure = h('figure', { class: 'tile', 'data-peer': peerId, 'data-key': key }, video, caption);
  tiles.set(key, { figure, video, caption, peerId, consumerId: '' });
  grid.append(figure);
  return tiles.get(key);
}

function refreshCaptions() {
  for (const tile of tiles.values()) {
    tile.caption.replaceChildren(h('span', { class: 'name' }, peerName(tile.peerId)),
      h('span', { class: 'state' }, stateText(tile.peerId)));
  }
}

function refreshPeople() {
  if (!client) return;
  const entries = [{ id: client.peerId, displayName: `${client.self?.displayName || seat.name} (${T.you})`, attributes: client.self?.attributes || {} }, ...client.peers];
  peopleHeading.textContent = fmt(T, 'participants_list', { n: entries.length });
  peopleList.replaceChildren(...entries.map((peer) => {
    const role = peer.attributes?.visit?.role;
    const extra = stateText(peer.id);
    return h('li', { 'data-peer': peer.id },
      peer.displayName,
      role ? ` – ${T[`role_${role}`] || role}` : '',
      extra ? ` (${extra})` : '');
  }));
  refreshCaptions();
}

let speaker = '';
function setSpeaker(peerId) {
  if (client && peerId === client.peerId) return; // the large tile shows someone else
  speaker = peerId;
  const many = (client?.peers.length || 0) > 1;
  for (const tile of tiles.values()) {
    const on = tile.peerId === peerId;
    tile.figure.classList.toggle('speaker', on);
    if (tile.consumerId && client) {
      // simulcast: the speaker's video at the top layer; the others lower when the room is big
      client.setPreferredLayers(tile.consumerId, on || !many ? 2 : 0).catch(() => {});
    }
  }
}

function addMessage(message) {
  if (message.deleted) return;
  let body;
  if (message.type === 'system') {
    if (message.kind === 'visit_ended') {
      body = h('span', { class: 'system' }, `${T.visit_ended} `, h('a', { href: message.survey, class: 'survey-link' }, T.survey_link));
    } else {
      body = h('span', { class: 'system' }, message.text);
    }
  } else if (message.attachment) {
    const link = h('a', { class: 'attachment', href: '#', 'aria-label': fmt(T, 'open_attachment', { name: message.attachment.name }) }, message.attachment.name);
    client?.chat.fileUrl(message.attachment.sha256).then((url) => {
      link.setAttribute('href', url);
      link.setAttribute('target', '_blank');
      link.setAttribute('rel', 'noopener');
    }).catch(() => {});
    body = h('span', {}, h('span', { class: 'from' }, `${message.from.displayName}: `), link);
  } else {
    body = h('span', {}, h('span', { class: 'from' }, `${message.from.displayName}: `), message.text);
  }
  const existing = messages.querySelector(`[data-id="${message.id}"]`);
  const item = h('li', { 'data-id': String(message.id) }, body);
  if (existing) existing.replaceWith(item);
  else messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

function chatPanel() {
  const input = /** @type {HTMLInputElement} */ (h('input', { id: 'chat-text', autocomplete: 'off', maxLength: 2000 }));
  const file = /** @type {HTMLInputElement} */ (h('input', { id: 'chat-file', type: 'file', accept: 'image/jpeg,image/png,image/gif,application/pdf' }));
  const form = h('form', { id: 'chat-form' },
    h('label', { for: 'chat-text' }, T.message), input,
    h('div', { class: 'controls' }, h('button', { type: 'submit' }, T.send)),
    h('label', { for: 'chat-file' }, T.attach), file);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !client) return;
    try {
      await client.chat.send(text);
      input.value = '';
    } catch (error) {
      say(String(/** @type {any} */ (error).message));
    }
  });
  file.addEventListener('change', async () => {
    const chosen = file.files?.[0];
    if (!chosen || !client) return;
    try {
      await client.chat.upload(chosen);
      say(fmt(T, 'attachment_sent', { name: chosen.name }));
    } catch (error) {
      say(fmt(T, 'attachment_failed', { error: String(/** @type {any} */ (error).message) }));
    }
    file.value = '';
  });
  const log = h('div', { role: 'log', 'aria-live': 'polite', 'aria-labelledby': 'chat-h', class: 'log' }, messages);
  return h('section', { 'aria-labelledby': 'chat-h' }, h('h2', { id: 'chat-h' }, T.chat), log, form);
}

function lobbyPanel() {
  const source = new EventSource(`/visit/api/visits/${visit.id}/lobby?p=${encodeURIComponent(seat.participant)}`);
  const known = new Set();
  source.onmessage = (event) => {
    const entries = JSON.parse(event.data).entries.filter((x) => x.state === 'waiting' || x.state === 'held');
    lobbyList.replaceChildren(...(entries.length ? entries.map(lobbyEntry) : [h('li', {}, T.lobby_empty)]));
    for (const entry of entries) {
      if (!known.has(entry.participantId)) say(fmt(T, 'lobby_arrived', { name: entryName(entry) }));
      known.add(entry.participantId);
    }
  };
  window.addEventListener('pagehide', () => source.close());
  return h('section', { 'aria-labelledby': 'lobby-h' }, h('h2', { id: 'lobby-h' }, T.lobby), lobbyList);
}

function entryName(entry) {
  return entry.actingFor ? fmt(T, 'for_person', { delegate: entry.name, principal: entry.actingFor }) : entry.name;
}

function lobbyEntry(entry) {
  const name = entryName(entry);
  const id = `hold-${entry.participantId}`;
  const message = /** @type {HTMLInputElement} */ (h('input', { id, value: entry.message || T.hold_default }));
  const decide = (action) => async () => {
    try {
      await postJson(`/visit/api/visits/${visit.id}/lobby/${encodeURIComponent(entry.participantId)}`,
        { as: seat.participant, action, message: action === 'admit' ? '' : message.value }, data.csrf);
    } catch (error) {
      say(String(/** @type {any} */ (error).message));
    }
  };
  return h('li', { 'data-participant': entry.participantId },
    h('span', { class: 'who' }, name, entry.state === 'held' ? ` – ${T.hold}` : ''),
    h('button', { type: 'button', onclick: decide('admit'), 'aria-label': `${T.admit}: ${name}` }, T.admit),
    h('button', { type: 'button', class: 'secondary', onclick: decide('deny'), 'aria-label': `${T.deny}: ${name}` }, T.deny),
    h('label', { for: id, class: 'visually-hidden' }, `${T.hold_message}: ${name}`), message,
    h('button', { type: 'button', class: 'secondary', onclick: decide('hold'), 'aria-label': `${T.hold}: ${name}` }, T.hold));
}

function toggle(button, on, onText, offText) {
  button.setAttribute('aria-pressed', String(!on));
  button.textContent = on ? onText : offText;
}

async function sendState() {
  if (!client) return;
  await client.request('visit.state', state).catch(() => {});
}

function consentDialog(requestedBy) {
  const existing = document.getElementById('consent');
  if (existing) existing.remove();
  const answer = (granted) => async () => {
    dialog.close();
    dialog.remove();
    try {
      await client?.request('visit.consent', { granted });
    } catch (error) {
      say(String(/** @type {any} */ (error).message));
    }
  };
  const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'consent', 'aria-labelledby': 'consent-h', 'aria-describedby': 'consent-q' },
    h('h2', { id: 'consent-h' }, T.consent_title),
    h('p', { id: 'consent-q' }, fmt(T, 'consent_question', { name: requestedBy || '' })),
    h('div', { class: 'controls' },
      h('button', { type: 'button', id: 'consent-yes', onclick: answer(true) }, T.consent_yes),
      h('button', { type: 'button', id: 'consent-no', class: 'secondary', onclick: answer(false) }, T.consent_no))));
  document.body.append(dialog);
  dialog.showModal();
}

function confirmEnd() {
  const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { id: 'end-dialog', 'aria-labelledby': 'end-h' },
    h('h2', { id: 'end-h' }, T.end_confirm),
    h('div', { class: 'controls' },
      h('button', {
        type: 'button', class: 'danger', id: 'end-confirm',
        onclick: async () => {
          dialog.close();
          dialog.remove();
          try {
            await client?.request('visit.end', {});
          } catch (error) {
            say(String(/** @type {any} */ (error).message));
          }
        },
      }, T.end_visit),
      h('button', { type: 'button', class: 'secondary', onclick: () => { dialog.close(); dialog.remove(); } }, T.cancel))));
  document.body.append(dialog);
  dialog.showModal();
}

function endedView(survey) {
  ended = true;
  for (const track of media?.getTracks() || []) track.stop();
  screenTrack?.stop();
  app.replaceChildren(h('section', { class: 'ended', 'aria-labelledby': 'ended-h' },
    h('h2', { id: 'ended-h', tabindex: '-1' }, T.visit_over),
    h('p', {}, T.visit_ended),
    survey ? h('p', {}, h('a', { class: 'button', href: survey, id: 'survey-link' }, T.survey_link)) : null,
    h('p', {}, h('a', { href: '/visit/' }, T.back_home))));
  /** @type {HTMLElement} */ (document.getElementById('ended-h')).focus();
}

function controls() {
  const mute = h('button', { type: 'button', id: 'mute', 'aria-pressed': 'false' }, T.mute);
  mute.addEventListener('click', () => {
    state.audio = !state.audio;
    for (const track of media?.getAudioTracks() || []) track.enabled = state.audio;
    toggle(mute, state.audio, T.mute, T.unmute);
    sendState();
  });
  const camera = h('button', { type: 'button', id: 'camera', 'aria-pressed': 'false' }, T.camera_off);
  camera.addEventListener('click', () => {
    state.video = !state.video;
    for (const track of media?.getVideoTracks() || []) track.enabled = state.video;
    toggle(camera, state.video, T.camera_off, T.camera_on);
    sendState();
  });
  const share = h('button', { type: 'button', id: 'share', 'aria-pressed': 'false' }, T.share_screen);
  share.addEventListener('click', async () => {
    if (!client) return;
    if (screenTrack) {
      const track = screenTrack;
      screenTrack = null;
      await client.unpublish(track).catch(() => {});
      track.stop();
    } else {
      try {
        const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
        screenTrack = display.getVideoTracks()[0];
        await client.publish(new MediaStream([screenTrack]));
        screenTrack.addEventListener('ended', () => share.click(), { once: true });
      } catch (error) {
        screenTrack = null;
        say(String(/** @type {any} */ (error).message || error));
      }
    }
    state.screen = Boolean(screenTrack);
    share.setAttribute('aria-pressed', String(state.screen));
    share.textContent = state.screen ? T.stop_share : T.share_screen;
    sendState();
  });
  const leave = h('button', {
    type: 'button', id: 'leave', class: 'secondary',
    onclick: async () => {
      leaving = true;
      await client?.close();
      for (const track of media?.getTracks() || []) track.stop();
      app.replaceChildren(h('p', { role: 'status' }, fmt(T, 'left', { name: seat.name })),
        h('p', {}, h('a', { href: '/visit/' }, T.back_home)));
    },
  }, T.leave);
  const buttons = [mute, camera, share];
  if (seat.professional) {
    const record = h('button', { type: 'button', id: 'record', 'aria-pressed': 'false' }, T.record);
    record.addEventListener('click', async () => {
      if (!client) return;
      try {
        if (client.recording) {
          await client.request('visit.stopRecording', {});
        } else {
          const answer = await client.request('visit.requestRecording', {});
          if (answer.waitingFor?.length) say(fmt(T, 'recording_waiting', { names: answer.waitingFor.join(', ') }));
        }
      } catch (error) {
        say(String(/** @type {any} */ (error).message));
      }
    });
    buttons.push(record);
    buttons.push(h('button', { type: 'button', id: 'end', class: 'danger', onclick: confirmEnd }, T.end_visit));
  }
  buttons.push(leave);
  return h('div', { class: 'controls', role: 'toolbar', 'aria-label': T.visit }, ...buttons);
}

async function watchQuality() {
  let lost = 0;
  let received = 0;
  while (client && !client.closed) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    if (!client || client.closed) return;
    let rtt = null;
    let lostNow = 0;
    let receivedNow = 0;
    for (const pc of [client.sendPc, client.recvPc]) {
      if (!pc) continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) rtt = Math.max(rtt ?? 0, s.currentRoundTripTime);
        if (s.type === 'inbound-rtp') {
          lostNow += s.packetsLost || 0;
          receivedNow += s.packetsReceived || 0;
        }
      });
    }
    const dLost = Math.max(0, lostNow - lost);
    const dReceived = Math.max(0, receivedNow - received);
    lost = lostNow;
    received = receivedNow;
    const loss = dReceived + dLost > 0 ? dLost / (dReceived + dLost) : 0;
    const level = rtt === null ? 'unknown' : rtt < 0.15 && loss < 0.02 ? 'good' : rtt < 0.4 && loss < 0.08 ? 'fair' : 'poor';
    quality.dataset.level = level;
    quality.textContent = `${T.quality}: ${T[`quality_${level}`]}`;
  }
}

function onTrack(track, info) {
  if (track.kind === 'audio') {
    const audio = /** @type {HTMLAudioElement} */ (h('audio', { autoplay: true }));
    audio.srcObject = new MediaStream([track]);
    audios.set(info.consumerId, audio);
    document.body.append(audio);
    return;
  }
  const tile = makeTile(info.producerId, info.peerId, new MediaStream([track]), true);
  tile.consumerId = info.consumerId;
  if (speaker) setSpeaker(speaker);
}

function removeConsumer(consumerId, producerId) {
  audios.get(consumerId)?.remove();
  audios.delete(consumerId);
  const tile = tiles.get(producerId);
  if (tile && tile.consumerId === consumerId) {
    tile.figure.remove();
    tiles.delete(producerId);
  }
}

async function connect() {
  const grant = await postJson(`/visit/api/visits/${visit.id}/ticket`, { participant: seat.participant }, data.csrf);
  const joined = await Client.connect(location.origin, {
    token: grant.ticket, room: grant.room, displayName: seat.name, joinParams: grant.joinParams,
  });
  client = joined;
  window.visitClient = joined; // for tests and the browser console
  joined.on('track', onTrack);
  joined.on('consumerClosed', ({ consumerId, producerId }) => removeConsumer(consumerId, producerId));
  joined.on('peerJoined', ({ peer }) => { refreshPeople(); say(fmt(T, 'joined', { name: peer.displayName })); });
  joined.on('peerLeft', ({ peerId }) => {
    const name = peerName(peerId);
    for (const [key, tile] of tiles) if (tile.peerId === peerId) { tile.figure.remove(); tiles.delete(key); }
    peerStates.delete(peerId);
    refreshPeople();
    say(fmt(T, 'left', { name }));
  });
  joined.on('activeSpeaker', ({ peerId }) => setSpeaker(peerId));
  joined.on('recordingState', (info) => {
    recordingBadge.hidden = !info.recording;
    const record = document.getElementById('record');
    if (record) {
      record.setAttribute('aria-pressed', String(Boolean(info.recording)));
      record.textContent = info.recording ? T.stop_record : T.record;
    }
    say(info.recording ? T.recording_on : T.recording_off);
  });
  joined.on('visit.peerState', (params) => {
    if (params.left) peerStates.delete(params.peerId);
    else peerStates.set(params.peerId, params);
    refreshPeople();
  });
  joined.on('visit.consentRequest', ({ requestedBy }) => consentDialog(requestedBy));
  joined.on('visit.consent', ({ name, granted }) => say(fmt(T, granted ? 'consent_given' : 'consent_refused', { name })));
  joined.on('visit.ended', ({ survey }) => {
    endedView(survey);
    joined.close();
  });
  joined.on('removed', () => {
    if (!ended) endedView('');
  });
  joined.on('disconnected', () => {
    if (ended || leaving) return;
    say(T.disconnected);
    reconnect(1);
  });
  joined.chat.on('message', addMessage);
  joined.chat.on('system', addMessage);
  joined.chat.open();
  const states = await joined.request('visit.states', {}).catch(() => ({ states: {} }));
  for (const [peerId, s] of Object.entries(states.states || {})) peerStates.set(peerId, s);
  if (joined.recording) recordingBadge.hidden = false;
  return joined;
}

async function publish(joined) {
  if (!media) return;
  // audio and video apart: a proxy permission may refuse one and allow the other
  for (const track of media.getTracks()) {
    try {
      await joined.publish(new MediaStream([track]), { simulcast: track.kind === 'video' });
    } catch (error) {
      say(`${track.kind}: ${String(/** @type {any} */ (error).message)}`);
    }
  }
  await sendState();
}

async function reconnect(attempt) {
  if (ended || leaving || attempt > 5) return;
  await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
  try {
    for (const tile of [...tiles.keys()]) if (tile !== 'local') { tiles.get(tile)?.figure.remove(); tiles.delete(tile); }
    const joined = await connect();
    await publish(joined);
    refreshPeople();
  } catch {
    reconnect(attempt + 1);
  }
}

async function joinVisit() {
  const side = [];
  if (seat.professional) side.push(lobbyPanel());
  side.push(h('section', { 'aria-labelledby': 'people-h' }, peopleHeading, peopleList));
  side.push(chatPanel());
  app.replaceChildren(h('div', { class: 'stage' },
    h('section', { 'aria-labelledby': 'stage-h' },
      h('h2', { id: 'stage-h', class: 'visually-hidden' }, T.visit),
      h('p', { class: 'controls' }, recordingBadge, quality),
      grid, controls()),
    h('div', { class: 'side' }, ...side)));
  if (media) makeTile('local', 'local', media, true);
  try {
    const joined = await connect();
    tiles.get('local').peerId = joined.peerId;
    refreshPeople();
    await publish(joined);
    watchQuality();
  } catch (error) {
    say(fmt(T, 'join_failed', { error: String(/** @type {any} */ (error).message) }));
  }
}

deviceCheck();
