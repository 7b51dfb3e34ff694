/**
 * mediasrv-client.js — the browser client SDK of mediasrv (a WebRTC SFU).
 *
 * A plain ES module with no dependencies and no build step. The server serves it at
 * `/client/mediasrv-client.js`; it speaks the signaling protocol of docs/protocol.md and mirrors
 * the Python SDK (`mediasrv.client`): same requests, same events, same negotiation.
 *
 * Usage:
 *
 *     import { Client } from '/client/mediasrv-client.js';
 *
 *     const client = await Client.connect('https://sfu.example.com', {
 *       token: 'secret', room: 'standup', displayName: 'Ada',
 *     });
 *     client.on('track', (track, info, stream) => {
 *       // info: {consumerId, producerId, peerId, kind, mid, paused}
 *       const el = document.createElement(track.kind);
 *       el.srcObject = new MediaStream([track]);
 *       el.autoplay = true;
 *       document.body.append(el);
 *     });
 *     client.on('data', (label, message, peerId) => console.log(peerId, label, message));
 *
 *     const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
 *     const producers = await client.publish(local);          // or publish(local, {simulcast: true})
 *     client.sendData('chat', 'hello');
 *     ...
 *     await client.unpublish(local.getVideoTracks()[0]);
 *     await client.close();
 *
 * Connection model (see docs/protocol.md):
 *
 * - one WebSocket to `ws(s)://HOST:PORT/ws`; `url` may be the server's http(s) or ws(s) URL or its
 *   `/ws` endpoint — it is normalized;
 * - `join` carries the codecs this browser decodes (`receiverCodecs()`): the server subscribes
 *   this client only to producers in those codecs;
 * - the **send** RTCPeerConnection: this client offers. A data channel named `mediasrv-control` is
 *   created before the first offer, so ICE, DTLS and SCTP come up at join even for a peer that
 *   never publishes; `connect()` resolves only once this connection is `connected`. Data channels
 *   opened with `sendData()` ride on it (DataProducers), and the server opens channels toward this
 *   client on it too (DataConsumers; their `protocol` is the sending peer's id);
 * - the **receive** RTCPeerConnection: the server offers (the `offer` notification, one m-line per
 *   consumer) and this client answers with the `answer` request carrying the offer's revision.
 *   Server offers are processed only after `connect()` has resolved, so `track` listeners added
 *   right after `connect()` see every track. All negotiations (send and receive) run one at a time.
 *
 * Events (`client.on(name, listener)`, `client.off(name, listener)`, `client.once(...)`):
 *
 * | event            | listener arguments                                                      |
 * | ---------------- | ----------------------------------------------------------------------- |
 * | `track`          | `(track, info, stream)` — a remote track; `info` is the consumer from the offer: `{consumerId, producerId, peerId, kind, mid, paused}` |
 * | `data`           | `(label, message, peerId)` — a data channel message from another peer (string or ArrayBuffer) |
 * | `peerJoined`     | `({peer})`                                                              |
 * | `peerLeft`       | `({peerId})`                                                            |
 * | `producerAdded`  | `(producer)` — `{id, kind, mid, mimeType, peerId}`                       |
 * | `producerClosed` | `({producerId, peerId})`                                                |
 * | `consumerClosed` | `({consumerId, producerId})` — the track's entry leaves `client.tracks` |
 * | `activeSpeaker`  | `({peerId, producerId})`                                                |
 * | `layersChanged` | `({consumerId, spatialLayer})` — the simulcast layer now received            |
 * | `producerLayers` | `({producerId, mid, active})` — the server paused/resumed layers nobody receives; the SDK applies it to the sender |
 * | `recordingState` | `({recording, id, producers, startedAt, stoppedAt, reason})` — the room's recording started, changed or stopped; also in `client.recording` (null when none runs) |
 * | `close`          | `()` — after `close()`                                                  |
 * | `reconnect`      | `({reason})` — the server's worker holding this room went away (`worker_failed`) or the server stops; the WebSocket closes next: connect again |
 * | `disconnected`   | `()` — the WebSocket closed without `close()`                           |
 *
 * Errors: every request rejects with an `Error` whose `.code` is the server's error code (see
 * docs/protocol.md), or `'timeout'` (no response within `requestTimeout`, 10 s by default),
 * `'closed'` (the client or its WebSocket closed), `'connect_failed'` (WebSocket or peer
 * connection could not be established).
 */

/** The data channel every client opens so that ICE, DTLS and SCTP come up at join. */
export const CONTROL_LABEL = 'mediasrv-control';

/** Default time limit for a request, the WebSocket opening and ICE/DTLS, in milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT = 10000;
/** ms a peer connection may stay ICE-'disconnected' before the client restarts ICE */
export const DEFAULT_ICE_RESTART_DELAY = 1000;

/**
 * An Error with a protocol error `code`.
 * @param {string} code
 * @param {string} message
 * @returns {Error & {code: string}}
 */
function codedError(code, message) {
  const error = /** @type {Error & {code: string}} */ (new Error(`${code}: ${message}`));
  error.code = code;
  return error;
}

/**
 * The signaling WebSocket URL for a server URL: http→ws, https→wss, and `/ws` appended unless the
 * path already ends with it. Relative URLs resolve against the page's location.
 * @param {string} url e.g. `https://host:8080`, `http://host:8080/`, `ws://host:8080/ws`, `/`
 * @returns {string}
 */
export function signalingUrl(url) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  const parsed = new URL(url, base);
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  else if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw codedError('invalid_url', `unsupported URL scheme ${parsed.protocol} in ${url}`);
  }
  if (!parsed.pathname.endsWith('/ws')) {
    parsed.pathname = (parsed.pathname.endsWith('/') ? parsed.pathname : parsed.pathname + '/') + 'ws';
  }
  parsed.hash = '';
  return parsed.toString();
}

/**
 * The mime types this browser can decode (`RTCRtpReceiver.getCapabilities`), without the
 * repair formats (rtx, red, ulpfec): sent with `join` so that the server subscribes this client
 * only to producers it can decode.
 * @returns {string[]} e.g. `['audio/opus', ..., 'video/VP8', 'video/VP9', ...]`, sorted
 */
export function receiverCodecs() {
  const found = new Set();
  for (const kind of ['audio', 'video']) {
    const capabilities = RTCRtpReceiver.getCapabilities ? RTCRtpReceiver.getCapabilities(kind) : null;
    for (const codec of (capabilities && capabilities.codecs) || []) {
      const name = codec.mimeType.split('/')[1].toLowerCase();
      if (!['rtx', 'red', 'ulpfec'].includes(name)) found.add(codec.mimeType);
    }
  }
  return [...found].sort().slice(0, 64);
}

/**
 * Resolve when `pc` is connected; reject when it fails, closes or takes longer than `limit` ms.
 * @param {RTCPeerConnection} pc
 * @param {number} limit
 * @returns {Promise<void>}
 */
function waitConnected(pc, limit) {
  if (pc.connectionState === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (/** @type {Error|null} */ error) => {
      clearTimeout(timer);
      pc.removeEventListener('connectionstatechange', changed);
      if (error) reject(error);
      else resolve();
    };
    const changed = () => {
      if (pc.connectionState === 'connected') done(null);
      else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        done(codedError('connect_failed', `peer connection ${pc.connectionState}`));
      }
    };
    const timer = setTimeout(
      () => done(codedError('connect_failed', `peer connection not connected within ${limit} ms ` +
        `(ice ${pc.iceConnectionState}, connection ${pc.connectionState})`)),
      limit,
    );
    pc.addEventListener('connectionstatechange', changed);
  });
}

/** A small event emitter; a listener that throws is logged and does not stop the others. */
class Emitter {
  constructor() {
    /** @type {Map<string, Function[]>} */
    this._listeners = new Map();
  }

  /**
   * Add a listener.
   * @param {string} event
   * @param {Function} listener
   * @returns {this}
   */
  on(event, listener) {
    const list = this._listeners.get(event) || [];
    list.push(listener);
    this._listeners.set(event, list);
    return this;
  }

  /**
   * Add a listener that runs once.
   * @param {string} event
   * @param {Function} listener
   * @returns {this}
   */
  once(event, listener) {
    const wrapper = (/** @type {any[]} */ ...args) => {
      this.off(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  /**
   * Remove a listener (or all listeners of the event when `listener` is omitted).
   * @param {string} event
   * @param {Function} [listener]
   * @returns {this}
   */
  off(event, listener) {
    if (!listener) {
      this._listeners.delete(event);
      return this;
    }
    const list = (this._listeners.get(event) || []).filter((f) => f !== listener);
    this._listeners.set(event, list);
    return this;
  }

  /**
   * Call the listeners of `event` in order.
   * @param {string} event
   * @param {...any} args
   * @returns {boolean} whether there was a listener
   */
  emit(event, ...args) {
    const list = (this._listeners.get(event) || []).slice();
    for (const listener of list) {
      try {
        listener(...args);
      } catch (error) {
        console.error(`mediasrv-client: listener for '${event}' threw`, error);
      }
    }
    return list.length > 0;
  }
}

/**
 * @typedef {Object} ConnectOptions
 * @property {string} token the signaling token
 * @property {string} room the room id (1..128 characters)
 * @property {string} [displayName] shown to other peers (≤128 characters)
 * @property {boolean} [autoSubscribe=true] receive every producer of the room, now and later
 * @property {string[]} [codecs] the mime types this client decodes; default: `receiverCodecs()`
 * @property {number} [requestTimeout=10000] ms per request; also bounds connecting
 * @property {Object} [joinParams] plugins' join parameters, sent with the join (e.g.
 *   `{onBehalfOf: {principal: '...'}}` for the proxy plugin)
 * @property {boolean} [autoRestartIce=true] restart ICE when a connection fails, stays
 *   disconnected for `iceRestartDelay` ms, or the network changes (see `restartIce`)
 * @property {number} [iceRestartDelay=1000] ms
 * @property {RTCConfiguration} [rtcConfiguration] configuration of both peer connections. The
 *   server is ICE-lite with UDP and TCP candidates; the TURN relays it is configured with
 *   (`[turn]`) come in the join result with short-lived credentials and are added after any
 *   `iceServers` given here (`{iceTransportPolicy: 'relay'}` forces their use)
 */

/**
 * @typedef {Object} ProducerInfo
 * @property {string} id
 * @property {'audio'|'video'} kind
 * @property {string} mid
 * @property {string} mimeType
 * @property {string} peerId
 */

/**
 * @typedef {Object} ConsumerInfo
 * @property {string} [consumerId]
 * @property {string} [producerId]
 * @property {string} [peerId] the publishing peer
 * @property {'audio'|'video'} [kind]
 * @property {string|null} mid
 * @property {boolean} [paused]
 */

/**
 * @typedef {Object} RemoteTrack
 * @property {MediaStreamTrack} track
 * @property {ConsumerInfo} info
 * @property {MediaStream|undefined} stream the stream of the publishing peer
 */

/** A mediasrv participant: one WebSocket and two RTCPeerConnections. Create with `Client.connect`. */
export class Client extends Emitter {
  /**
   * Use `Client.connect()`.
   * @param {WebSocket} ws an open WebSocket
   * @param {{requestTimeout?: number, rtcConfiguration?: RTCConfiguration, autoRestartIce?: boolean, iceRestartDelay?: number}} [options]
   */
  constructor(ws, options = {}) {
    super();
    /** @type {WebSocket} */
    this.ws = ws;
    /** @type {number} */
    this.requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    /** @type {RTCConfiguration} */
    this._rtcConfiguration = options.rtcConfiguration || {};
    this._nextId = 0;
    /** @type {Map<number, {resolve: Function, reject: Function, timer: any, method: string}>} */
    this._pending = new Map();
    /** @type {Promise<unknown>} negotiations (send and receive) run one after another */
    this._chain = Promise.resolve();
    /** @type {() => void} */
    this._setReady = () => {};
    /** @type {Promise<void>} resolved when connect() resolves: server offers wait for it */
    this._ready = new Promise((resolve) => {
      this._setReady = resolve;
    });
    /** @type {RemoteTrack[]} the remote tracks received so far (minus closed consumers) */
    this.tracks = [];
    /** @type {RTCPeerConnection} the connection this client offers on: publishing, data */
    this.sendPc = new RTCPeerConnection(this._rtcConfiguration);
    /** @type {RTCPeerConnection|null} the connection the server offers on: subscribing */
    this.recvPc = null;
    /** @type {RTCDataChannel} */
    this._control = this.sendPc.createDataChannel(CONTROL_LABEL);
    /** @type {Map<string, RTCDataChannel>} channels opened by sendData(), by label */
    this._channels = new Map();
    /** chat over the server's chat plugin (see Chat) */
    this.chat = new Chat(this);
    /** @type {Map<string, ConsumerInfo>} */
    this._consumersByMid = new Map();
    /** @type {string} */
    this.peerId = '';
    /** @type {string} */
    this.room = '';
    /** @type {Array<{id: string, displayName: string, attributes: Object, producers: ProducerInfo[]}>} the other peers */
    this.peers = [];
    /** @type {{id: string, displayName: string, attributes: Object}|null} this peer, as the others see it */
    this.self = null;
    /** @type {Object|null} the room's recording while one runs (see `recordingState`) */
    this.recording = null;
    /** @type {ProducerInfo[]} this client's producers, as of the last publish answer */
    this.producers = [];
    /** @type {boolean} */
    this.closed = false;
    /** @type {boolean} restart ICE by itself when a connection fails or the network changes */
    this.autoRestartIce = options.autoRestartIce ?? true;
    /** @type {number} ms a connection may stay 'disconnected' before ICE is restarted */
    this.iceRestartDelay = options.iceRestartDelay ?? DEFAULT_ICE_RESTART_DELAY;
    /** @type {number} ICE restarts so far */
    this.iceRestarts = 0;
    /** @type {Promise<void>|null} the restart under way */
    this._restarting = null;
    this.sendPc.addEventListener('datachannel', (event) => this._onDataChannel(event.channel));
    this._watchIce(this.sendPc);
    this._onNetworkChange = () => this._autoRestartIce('network change');
    if (typeof window !== 'undefined') window.addEventListener('online', this._onNetworkChange);
    globalThis.navigator?.connection?.addEventListener?.('change', this._onNetworkChange);
    ws.addEventListener('message', (event) => this._onMessage(event));
    ws.addEventListener('close', () => this._onSocketClosed());
  }

  // ---- ICE restart ----

  /**
   * Restart ICE on both connections, on the same peer: the server gives new credentials, the
   * browser gathers and checks new candidates, and media moves to the path that works — no
   * new join, and the other participants see nothing. Called by the client itself (unless
   * `autoRestartIce` is false) when a connection's ICE state is 'failed' or stays
   * 'disconnected' for `iceRestartDelay` ms, and when the browser goes online again or its
   * network changes. Emits `iceRestart` with `{count, reason}`.
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  restartIce(reason = 'requested') {
    if (this.closed) return Promise.reject(codedError('closed', 'the client is closed'));
    if (this._restarting) return this._restarting;
    this._restarting = (async () => {
      this.iceRestarts += 1;
      this.emit('iceRestart', { count: this.iceRestarts, reason });
      // the receive connection: new server credentials come with the server's next offer
      await this.request('restartIce');
      // the send connection: our offer with new credentials; the answer has the server's
      this.sendPc.restartIce();
      await this._negotiateSend();
    })().finally(() => {
      this._restarting = null;
    });
    return this._restarting;
  }

  /** @param {string} reason */
  _autoRestartIce(reason) {
    if (this.closed || !this.autoRestartIce || !this.peerId) return;
    this.restartIce(reason).catch((error) => {
      if (!this.closed) console.warn('mediasrv-client: ICE restart failed', error);
    });
  }

  /** @param {RTCPeerConnection} pc */
  _watchIce(pc) {
    let timer = null;
    pc.addEventListener('iceconnectionstatechange', () => {
      clearTimeout(timer);
      timer = null;
      const state = pc.iceConnectionState;
      if (state === 'failed') {
        this._autoRestartIce('ice failed');
      } else if (state === 'disconnected') {
        timer = setTimeout(() => {
          if (pc.iceConnectionState === 'disconnected') this._autoRestartIce('ice disconnected');
        }, this.iceRestartDelay);
      }
    });
  }

  /**
   * Open the WebSocket, join the room and bring up the send connection.
   * @param {string} url the server's http(s)/ws(s) URL or its /ws endpoint
   * @param {ConnectOptions} options
   * @returns {Promise<Client>} resolves once joined and the send connection is connected
   */
  static async connect(url, options) {
    const { token, room, displayName = '', autoSubscribe = true } = options || {};
    const codecs = options?.codecs ?? receiverCodecs();
    const limit = options?.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    const ws = await openSocket(signalingUrl(url), limit);
    const client = new Client(ws, options);
    try {
      const result = await client.request('join', {
        ...(options?.joinParams || {}), token, room, displayName, autoSubscribe, codecs,
      });
      client.peerId = result.peerId;
      client.self = result.self;
      client.recording = result.recording || null;
      client.room = result.room;
      client.peers = result.peers;
      client._addIceServers(result.iceServers || []);
      await client._negotiateSend();
      await waitConnected(client.sendPc, client.requestTimeout);
    } catch (error) {
      await client.close();
      throw error;
    }
    client._setReady();
    return client;
  }

  /**
   * The server's TURN relays (with this peer's short-lived credentials, from the join result)
   * after the application's own `rtcConfiguration.iceServers`, on both peer connections.
   * @param {RTCIceServer[]} servers
   */
  _addIceServers(servers) {
    if (!servers.length) return;
    this._rtcConfiguration = {
      ...this._rtcConfiguration,
      iceServers: [...(this._rtcConfiguration.iceServers || []), ...servers],
    };
    this.sendPc.setConfiguration(this._rtcConfiguration);
    if (this.recvPc) this.recvPc.setConfiguration(this._rtcConfiguration);
  }

  // ---- signaling ----

  /**
   * Send a request and wait for its response.
   * @param {string} method
   * @param {Object} [params]
   * @returns {Promise<any>} the result; rejects with an Error having `.code`
   */
  request(method, params = {}) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(codedError('closed', 'the client is closed'));
    }
    const id = ++this._nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(codedError('timeout', `no response to ${method} within ${this.requestTimeout} ms`));
      }, this.requestTimeout);
      this._pending.set(id, { resolve, reject, timer, method });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * @param {MessageEvent} event
   */
  _onMessage(event) {
    if (typeof event.data !== 'string') return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      console.warn('mediasrv-client: a frame that is not JSON', error);
      return;
    }
    if (message.method !== undefined && message.id === undefined) {
      this._notification(message.method, message.params || {});
      return;
    }
    const pending = this._pending.get(message.id);
    if (!pending) {
      if (message.ok === false) console.warn('mediasrv-client: server error', message.error);
      return;
    }
    this._pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.ok) {
      pending.resolve(message.result);
    } else {
      const error = message.error || {};
      pending.reject(codedError(error.code || '?', error.message || ''));
    }
  }

  /**
   * @param {string} method
   * @param {any} params
   */
  _notification(method, params) {
    if (method === 'offer') {
      // wait for connect() before queueing: the first offer can arrive before the join response
      this._ready.then(() => this._enqueue(() => this._answerOffer(params))).catch((error) => {
        if (!this.closed) console.error("mediasrv-client: answering the server's offer failed", error);
      });
      return;
    }
    if (method === 'peerJoined' && params.peer) {
      this.peers = this.peers.filter((p) => p.id !== params.peer.id).concat([params.peer]);
    } else if (method === 'peerLeft') {
      this.peers = this.peers.filter((p) => p.id !== params.peerId);
    } else if (method === 'consumerClosed') {
      this.tracks = this.tracks.filter((t) => t.info.consumerId !== params.consumerId);
    } else if (method === 'recordingState') {
      this.recording = params.recording ? params : null;
    } else if (method === 'producerLayers') {
      this._setLayersActive(params).catch((error) => {
        if (!this.closed) console.warn('mediasrv-client: pausing simulcast layers failed', error);
      });
    }
    this.emit(method, params);
  }

  /**
   * The server asks to stop (or restart) encoding simulcast layers nobody receives: set each
   * encoding's `active` flag of the sender of that producer (layer i is encoding i).
   * @param {{producerId: string, mid: string, active: boolean[]}} params
   */
  async _setLayersActive(params) {
    const transceiver = this.sendPc.getTransceivers().find((t) => t.mid === params.mid);
    if (!transceiver || !transceiver.sender.track) return;
    const parameters = transceiver.sender.getParameters();
    const encodings = parameters.encodings || [];
    let changed = false;
    encodings.forEach((encoding, index) => {
      const active = params.active[index] !== false;
      if (encoding.active !== active) {
        encoding.active = active;
        changed = true;
      }
    });
    if (changed) await transceiver.sender.setParameters(parameters);
  }

  _onSocketClosed() {
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(codedError('closed', `signaling closed before the response to ${pending.method}`));
      this._pending.delete(id);
    }
    if (!this.closed) this.emit('disconnected');
  }

  /**
   * Run `task` after every negotiation queued before it.
   * @template T
   * @param {() => Promise<T>} task
   * @returns {Promise<T>}
   */
  _enqueue(task) {
    const run = this._chain.then(task, task);
    this._chain = run.catch(() => {});
    return run;
  }

  // ---- publishing ----

  /**
   * Offer the send connection's current state; apply the server's answer.
   * @returns {Promise<{sdp: string, producers: ProducerInfo[], pending: string[], rejected: Object<string, string>}>}
   */
  _negotiateSend() {
    return this._enqueue(async () => {
      const offer = await this.sendPc.createOffer();
      await this.sendPc.setLocalDescription(offer);
      let result;
      try {
        result = await this.request('publish', { sdp: this.sendPc.localDescription.sdp });
      } catch (error) {
        // refused (e.g. by a plugin): back to the last agreed state
        if (this.sendPc.signalingState === 'have-local-offer') {
          await this.sendPc.setLocalDescription({ type: 'rollback' });
        }
        throw error;
      }
      await this.sendPc.setRemoteDescription({ type: 'answer', sdp: result.sdp });
      this.producers = result.producers;
      return result;
    });
  }

  /**
   * Send the tracks of `stream`, one sendonly transceiver each.
   * @param {MediaStream|MediaStreamTrack|MediaStreamTrack[]} stream
   * @param {{simulcast?: boolean}} [options] simulcast: send video as three layers with rids
   *   q/h/f (scaleResolutionDownBy 4/2/1); off by default
   * @returns {Promise<ProducerInfo[]>} this client's producers after the negotiation (tracks whose
   *   offer carries no SSRC appear once their first packet arrives; see `pending` in the protocol).
   *   A refusal (e.g. a plugin's `authorize_publish`) rejects with its code and takes the tracks
   *   back; later publishes still work.
   */
  async publish(stream, options = {}) {
    if (this.closed) throw codedError('closed', 'the client is closed');
    const simulcast = Boolean(options.simulcast);
    let media;
    if (typeof MediaStream !== 'undefined' && stream instanceof MediaStream) media = stream;
    else media = new MediaStream(Array.isArray(stream) ? stream : [stream]);
    /** @type {RTCRtpTransceiver[]} */
    const added = [];
    for (const track of media.getTracks()) {
      /** @type {RTCRtpTransceiverInit} */
      const init = { direction: 'sendonly', streams: [media] };
      if (simulcast && track.kind === 'video') {
        init.sendEncodings = [
          { rid: 'q', scaleResolutionDownBy: 4 },
          { rid: 'h', scaleResolutionDownBy: 2 },
          { rid: 'f', scaleResolutionDownBy: 1 },
        ];
      }
      added.push(this.sendPc.addTransceiver(track, init));
    }
    try {
      const result = await this._negotiateSend();
      return result.producers.slice();
    } catch (error) {
      // a refused publish takes its tracks back (their m-lines go inactive in the next
      // offer), so later publishes still work
      for (const transceiver of added) {
        transceiver.direction = 'inactive';
        await transceiver.sender.replaceTrack(null);
      }
      throw error;
    }
  }

  /**
   * Stop sending `track`: its m-line becomes inactive and the server closes its producer.
   * @param {MediaStreamTrack} track
   * @returns {Promise<void>}
   */
  async unpublish(track) {
    let found = false;
    for (const transceiver of this.sendPc.getTransceivers()) {
      if (transceiver.sender.track === track) {
        transceiver.direction = 'inactive';
        await transceiver.sender.replaceTrack(null);
        found = true;
      }
    }
    if (found) await this._negotiateSend();
  }

  /**
   * Close one of this client's producers by id (the track keeps its m-line).
   * @param {string} producerId
   * @returns {Promise<void>}
   */
  async closeProducer(producerId) {
    await this.request('closeProducer', { producerId });
  }

  // ---- subscribing ----

  /**
   * Answer one server offer on the receive connection (runs inside the negotiation chain).
   * @param {{sdp: string, revision: number, consumers?: ConsumerInfo[]}} params
   */
  async _answerOffer(params) {
    if (this.closed) return;
    if (this.recvPc === null) {
      this.recvPc = new RTCPeerConnection(this._rtcConfiguration);
      this.recvPc.addEventListener('track', (event) => this._onTrack(event));
      this._watchIce(this.recvPc);
    }
    for (const info of params.consumers || []) {
      if (info.mid != null) this._consumersByMid.set(String(info.mid), info);
    }
    await this.recvPc.setRemoteDescription({ type: 'offer', sdp: params.sdp });
    const answer = await this.recvPc.createAnswer();
    await this.recvPc.setLocalDescription(answer);
    await this.request('answer', { sdp: this.recvPc.localDescription.sdp, revision: params.revision });
  }

  /**
   * @param {RTCTrackEvent} event
   */
  _onTrack(event) {
    const mid = event.transceiver ? event.transceiver.mid : null;
    const info = (mid != null && this._consumersByMid.get(mid)) || { mid };
    const stream = event.streams[0];
    this.tracks = this.tracks.filter((t) => t.track !== event.track);
    this.tracks.push({ track: event.track, info, stream });
    this.emit('track', event.track, info, stream);
  }

  /**
   * Subscribe to a producer (for clients that joined with `autoSubscribe: false`).
   * @param {string} producerId
   * @returns {Promise<string>} the consumer id; the track follows with the next offer
   */
  async subscribe(producerId) {
    const result = await this.request('subscribe', { producerId });
    return String(result.consumerId);
  }

  /**
   * @param {string} producerId
   * @returns {Promise<void>}
   */
  async unsubscribe(producerId) {
    await this.request('unsubscribe', { producerId });
  }

  /**
   * Stop forwarding one consumer.
   * @param {string} consumerId
   * @returns {Promise<void>}
   */
  async pauseConsumer(consumerId) {
    await this.request('pauseConsumer', { consumerId });
  }

  /**
   * Restart forwarding one consumer (video restarts at a keyframe).
   * @param {string} consumerId
   * @returns {Promise<void>}
   */
  async resumeConsumer(consumerId) {
    await this.request('resumeConsumer', { consumerId });
  }

  /**
   * The highest simulcast layer to receive on this consumer (0 is the lowest; null: any). The
   * server also moves the consumer down when the link cannot carry it, and back up slowly.
   * Changes of the layer actually received arrive as `layersChanged` events.
   * @param {string} consumerId
   * @param {number|null} spatialLayer
   * @returns {Promise<{preferredLayer: number|null, targetLayer: number|null}>}
   */
  async setPreferredLayers(consumerId, spatialLayer) {
    return this.request('setPreferredLayers', { consumerId, spatialLayer });
  }

  /**
   * Start recording the room (every producer, now and later) or some producers. Plugins may
   * refuse (e.g. `consent_missing`); every peer is told with `recordingState`.
   * @param {string[]} [producerIds]
   * @returns {Promise<{recording: boolean, id: string, producers: string[]}>}
   */
  async startRecording(producerIds) {
    return this.request('startRecording', producerIds ? { producerIds } : {});
  }

  /**
   * Stop the room's recording.
   * @returns {Promise<{recording: boolean, id: string, reason: string}>}
   */
  async stopRecording() {
    return this.request('stopRecording', {});
  }

  /**
   * The server's statistics of this peer: transports, producers and consumers.
   * (For the browser's own numbers use `client.sendPc.getStats()` / `client.recvPc.getStats()`.)
   * @returns {Promise<Object>}
   */
  async stats() {
    return this.request('stats');
  }

  // ---- data ----

  /**
   * Send on the data channel with this label (opened on first use; messages sent before it
   * opens go out, in order, when it opens). Labels starting with `mediasrv` are reserved.
   * @param {string} label
   * @param {string|ArrayBuffer|ArrayBufferView|Blob} message
   */
  sendData(label, message) {
    if (this.closed) throw codedError('closed', 'the client is closed');
    if (label.startsWith('mediasrv')) {
      throw codedError('invalid_params', `data channel labels starting with 'mediasrv' are reserved`);
    }
    let channel = this._channels.get(label);
    if (!channel) {
      channel = this.sendPc.createDataChannel(label);
      channel.binaryType = 'arraybuffer';
      this._channels.set(label, channel);
    }
    if (channel.readyState === 'open') {
      channel.send(/** @type {any} */ (message));
    } else {
      const ch = channel;
      ch.addEventListener('open', () => ch.send(/** @type {any} */ (message)), { once: true });
    }
  }

  /**
   * A channel the server opened toward this client: another peer's DataProducer.
   * @param {RTCDataChannel} channel
   */
  _onDataChannel(channel) {
    const label = channel.label;
    const peerId = channel.protocol;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', (event) => this.emit('data', label, event.data, peerId));
  }

  // ---- end ----

  /**
   * Leave the room and close the WebSocket and both peer connections. Idempotent.
   * @returns {Promise<void>}
   */
  async close() {
    if (this.closed) return;
    this.closed = true;
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onNetworkChange);
    globalThis.navigator?.connection?.removeEventListener?.('change', this._onNetworkChange);
    try {
      if (this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ id: ++this._nextId, method: 'leave', params: {} }));
      }
    } catch (error) {
      // the socket is going away anyway
    }
    this.ws.close();
    this._onSocketClosed();
    for (const channel of this._channels.values()) channel.close();
    this.sendPc.close();
    if (this.recvPc !== null) this.recvPc.close();
    this.emit('close');
  }
}

/**
 * Open a WebSocket, bounded in time.
 * @param {string} url
 * @param {number} limit ms
 * @returns {Promise<WebSocket>}
 */
/**
 * Chat over the server's chat plugin (plugins/chat; label `chat`): `client.chat`.
 *
 *     const id = await client.chat.send('hello');      // resolves when the server has stored it
 *     client.chat.on('message', (message) => ...);     // {id, from: {peerId, displayName}, text, ts}
 *     client.chat.history;                              // every message seen, by id order
 *     const fileId = await client.chat.upload(file);     // a Blob/File attachment (image, PDF)
 *     const url = await client.chat.fileUrl(message.attachment.sha256);  // a signed download URL
 *
 * Events: `message`, `system`, `typing`, `read`, `delivered`, `refused` (errors not tied to a
 * request).
 */
export class Chat extends Emitter {
  /** @param {Client} client */
  constructor(client) {
    super();
    this._client = client;
    this._channel = null;
    this._pending = new Map();
    this._seq = 0;
    /** @type {Map<number, Object>} */
    this._messages = new Map();
    /** @type {Map<string, (message: Object) => void>} upload events by clientId */
    this._uploads = new Map();
    this.lastId = 0;
  }

  /**
   * Post an attachment (a Blob or File: JPEG, PNG, GIF or PDF by default); resolves with the
   * message id once stored, rejects with `.code` (e.g. `type_not_allowed`). Uploading the same
   * bytes again resumes from what the server already has.
   * @param {Blob} file
   * @param {string} [name] default: the File's name
   * @returns {Promise<number>}
   */
  async upload(file, name) {
    const CHUNK = 32 * 1024;
    const WINDOW = 8;
    const bytes = new Uint8Array(await file.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    const sha256 = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    const fileName = name ?? /** @type {any} */ (file).name ?? 'file';
    const clientId = `${Date.now().toString(36)}-${++this._seq}`;
    const size = bytes.length;
    const toBase64 = (/** @type {Uint8Array} */ part) => {
      let binary = '';
      for (let i = 0; i < part.length; i += 0x8000) {
        binary += String.fromCharCode(...part.subarray(i, i + 0x8000));
      }
      return btoa(binary);
    };
    let uploadId = '';
    let sent = 0;
    let acked = 0;
    let timer = 0;
    const pump = () => {
      while (sent < size && sent - acked < WINDOW * CHUNK) {
        const part = bytes.subarray(sent, sent + CHUNK);
        this._write({ type: 'upload-chunk', uploadId, offset: sent, data: toBase64(part) });
        sent += part.length;
      }
    };
    return new Promise((resolve, reject) => {
      const idle = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          this._uploads.delete(clientId);
          this._pending.delete(clientId);
          reject(codedError('timeout', `no upload progress in ${DEFAULT_REQUEST_TIMEOUT} ms`));
        }, DEFAULT_REQUEST_TIMEOUT);
      };
      const done = () => {
        clearTimeout(timer);
        this._uploads.delete(clientId);
      };
      this._pending.set(clientId, {
        resolve: (/** @type {number} */ id) => (done(), resolve(id)),
        reject: (/** @type {Error} */ error) => (done(), reject(error)),
        timer: 0,
      });
      this._uploads.set(clientId, (message) => {
        idle();
        if (message.type === 'upload-ready') {
          uploadId = message.uploadId;
          sent = acked = message.offset;
        } else {
          acked = Math.max(acked, message.offset);
        }
        pump();
      });
      idle();
      this._write({ type: 'upload-start', clientId, name: fileName, size, sha256 });
    });
  }

  /** @returns {Object[]} the messages seen, oldest first */
  get history() {
    return [...this._messages.values()].sort((a, b) => a.id - b.id);
  }

  /**
   * Open the channel (done by the first send) and ask for the history since `since`
   * (default: the last id seen, so a reconnect gets what it missed).
   * @param {number} [since]
   */
  open(since) {
    if (this._channel) return;
    const channel = this._client.sendPc.createDataChannel('chat');
    this._channel = channel;
    channel.addEventListener('message', (event) => this._onMessage(event.data));
    const ask = () => channel.send(JSON.stringify({ type: 'history', since: since ?? this.lastId }));
    if (channel.readyState === 'open') ask();
    else channel.addEventListener('open', ask, { once: true });
  }

  /**
   * Post a message; resolves with its server id once stored, rejects with `.code` if refused.
   * @param {string} text
   * @returns {Promise<number>}
   */
  send(text) {
    return this._request({ type: 'send', text });
  }

  /** @param {number} id @param {string} text */
  edit(id, text) {
    return this._request({ type: 'edit', id, text });
  }

  /** @param {number} id */
  delete(id) {
    return this._request({ type: 'delete', id });
  }

  /**
   * A short-lived URL of one of this room's attachments (for a link or an image), by the
   * `sha256` of the message's `attachment`; rejects with `.code` (e.g. `download_denied`).
   * @param {string} sha256
   * @returns {Promise<string>} a path on the server, signed, valid for the chat plugin's url_seconds
   */
  fileUrl(sha256) {
    return this._request({ type: 'file-url', sha256 });
  }

  typing() {
    this._write({ type: 'typing' });
  }

  /** @param {number} upTo */
  read(upTo) {
    this._write({ type: 'read', upTo });
  }

  _write(message) {
    this.open();
    const channel = /** @type {RTCDataChannel} */ (this._channel);
    const text = JSON.stringify(message);
    if (channel.readyState === 'open') channel.send(text);
    else channel.addEventListener('open', () => channel.send(text), { once: true });
  }

  _request(message) {
    const clientId = `${Date.now().toString(36)}-${++this._seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(clientId);
        reject(codedError('timeout', `no answer to chat ${message.type} in 10 s`));
      }, DEFAULT_REQUEST_TIMEOUT);
      this._pending.set(clientId, { resolve, reject, timer });
      this._write({ ...message, clientId });
    });
  }

  _onMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === 'upload-ready' || message.type === 'upload-progress') {
      this._uploads.get(message.clientId)?.(message);
      return;
    }
    const pending = message.clientId ? this._pending.get(message.clientId) : null;
    if (message.type === 'file-url' && pending) {
      clearTimeout(pending.timer);
      this._pending.delete(message.clientId);
      pending.resolve(message.url);
      return;
    }
    if (message.type === 'ack' || (message.type === 'error' && pending)) {
      if (!pending) return;
      clearTimeout(pending.timer);
      this._pending.delete(message.clientId);
      if (message.type === 'ack') pending.resolve(message.id);
      else pending.reject(codedError(message.code, message.message));
      return;
    }
    if (message.type === 'message' || message.type === 'system') {
      this._messages.set(message.id, message);
      this.lastId = Math.max(this.lastId, message.id);
    }
    if (message.type === 'error') this.emit('refused', message);
    else if (message.type !== 'history') this.emit(message.type, message);
  }
}

function openSocket(url, limit) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const settle = (/** @type {string|null} */ why) => {
      clearTimeout(timer);
      ws.removeEventListener('open', opened);
      ws.removeEventListener('error', errored);
      ws.removeEventListener('close', closed);
      if (why === null) {
        resolve(ws);
        return;
      }
      ws.close();
      reject(codedError('connect_failed', `WebSocket ${url}: ${why}`));
    };
    const opened = () => settle(null);
    const errored = () => settle('error while opening');
    const closed = () => settle('closed while opening');
    const timer = setTimeout(() => settle(`not open within ${limit} ms`), limit);
    ws.addEventListener('open', opened);
    ws.addEventListener('error', errored);
    ws.addEventListener('close', closed);
  });
}

export default Client;
