// The professional's console: the week's calendar with invitation links, and the form that
// books an appointment of a visit type with its participants.
import { announce, boot, fmt, h, localTime, postJson } from './common.js';

const data = boot();
const T = data.texts;
const status = document.getElementById('status');
const calendar = /** @type {HTMLElement} */ (document.getElementById('calendar'));
const form = /** @type {HTMLFormElement} */ (document.getElementById('new-appointment'));

function copyButton(input, name) {
  return h('button', {
    type: 'button', class: 'secondary', 'aria-label': fmt(T, 'copy_link_for', { name }),
    onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        document.execCommand('copy');
      }
      announce(status, T.copied);
    },
  }, T.copy);
}

function appointmentView(visit) {
  const links = visit.links.length
    ? h('ul', { class: 'links', 'aria-label': T.invitation_links },
      ...visit.links.map((link) => {
        const id = `link-${visit.id}-${link.participantId}`;
        const input = h('input', { id, type: 'text', readOnly: true, value: link.url, class: 'invitation' });
        return h('li', {},
          h('label', { for: id }, fmt(T, 'invitation_for', { name: link.name })),
          input, copyButton(input, link.name));
      }))
    : null;
  const open = visit.status === 'scheduled' || visit.status === 'in_progress'
    ? h('a', { class: 'button', href: `/visit/room/${visit.id}` }, `${T.open_visit}: ${visit.title}`)
    : null;
  const cancel = visit.host && visit.status === 'scheduled'
    ? h('button', {
      type: 'button', class: 'secondary',
      onclick: async () => {
        try {
          await postJson(`/visit/api/appointments/${visit.id}/cancel`, {}, data.csrf);
          location.reload();
        } catch (error) {
          announce(status, String(/** @type {any} */ (error).message));
        }
      },
    }, `${T.cancel_appointment}: ${visit.title}`)
    : null;
  return h('article', { class: 'appointment', 'data-id': visit.id },
    h('h3', {}, visit.title),
    h('p', { class: 'meta' },
      `${localTime(visit.startsAt, data.lang)} · ${fmt(T, 'minutes', { n: visit.minutes })} · `,
      `${T[`type_${visit.type}`]} · ${visit.unit} · `,
      h('span', { class: 'badge' }, T[`status_${visit.status}`])),
    h('p', {}, `${T.participants}: `, visit.participants.map((p) => `${p.name} (${T[`role_${p.role}`]})`).join(', ')),
    links, h('div', { class: 'controls' }, open, cancel));
}

function renderCalendar() {
  calendar.replaceChildren();
  if (!data.visits.length) {
    calendar.append(h('p', {}, T.no_appointments));
    return;
  }
  for (const visit of data.visits) calendar.append(appointmentView(visit));
}

// ---- the booking form ----

let participantCount = 0;
const participantList = h('div', { id: 'participants' });

function participantRow() {
  const n = ++participantCount;
  const id = (name) => `p${n}-${name}`;
  const role = h('select', { id: id('role'), name: 'role' },
    ...['client', 'relative', 'professional'].map((r) => h('option', { value: r }, T[`role_${r}`])));
  const actsFor = h('select', { id: id('acts'), name: 'actsFor' });
  const actsWrap = h('div', { hidden: true }, h('label', { for: id('acts') }, T.on_behalf_of), actsFor);
  const row = h('fieldset', { class: 'participant', 'data-n': n },
    h('legend', {}, fmt(T, 'participant', { n })),
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: id('role') }, T.role), role),
      h('div', {}, h('label', { for: id('name') }, T.name),
        h('input', { id: id('name'), name: 'name', autocomplete: 'off', required: true })),
      h('div', {}, h('label', { for: id('code') }, T.identity_code),
        h('input', { id: id('code'), name: 'identityCode', autocomplete: 'off', 'aria-describedby': 'code-help' }))),
    actsWrap,
    h('button', {
      type: 'button', class: 'secondary', 'aria-label': fmt(T, 'remove_participant', { n }),
      onclick: () => { row.remove(); refreshActsFor(); },
    }, '✕'));
  role.addEventListener('change', refreshActsFor);
  return row;
}

function refreshActsFor() {
  const rows = [...participantList.querySelectorAll('fieldset.participant')];
  rows.forEach((row, index) => {
    const role = /** @type {HTMLSelectElement} */ (row.querySelector('[name=role]')).value;
    const select = /** @type {HTMLSelectElement} */ (row.querySelector('[name=actsFor]'));
    const wrap = /** @type {HTMLElement} */ (select.parentElement);
    wrap.hidden = role !== 'relative';
    const chosen = select.value;
    select.replaceChildren(h('option', { value: '' }, '–'),
      ...rows.map((other, i) => {
        if (i === index) return null;
        const otherRole = /** @type {HTMLSelectElement} */ (other.querySelector('[name=role]')).value;
        if (otherRole !== 'client') return null;
        const name = /** @type {HTMLInputElement} */ (other.querySelector('[name=name]')).value || `#${i + 1}`;
        return h('option', { value: String(i) }, name);
      }).filter(Boolean));
    select.value = chosen;
  });
}

function buildForm() {
  const now = new Date(Date.now() + 10 * 60000);
  now.setSeconds(0, 0);
  const pad = (n) => String(n).padStart(2, '0');
  const local = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}`;
  const errors = h('div', { id: 'form-errors', class: 'error', role: 'alert' });
  form.append(
    errors,
    h('label', { for: 'type' }, T.visit_type),
    h('select', { id: 'type', name: 'type' }, ...data.types.map((v) => h('option', { value: v }, T[`type_${v}`]))),
    h('label', { for: 'unit' }, T.unit),
    h('select', { id: 'unit', name: 'unit' }, ...data.units.map((u) => h('option', { value: u }, u))),
    h('label', { for: 'title' }, T.title),
    h('input', { id: 'title', name: 'title', required: true, maxLength: 200, autocomplete: 'off' }),
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'starts' }, T.starts_at),
        h('input', { id: 'starts', name: 'startsAt', type: 'datetime-local', value: local, required: true })),
      h('div', {}, h('label', { for: 'minutes' }, T.duration),
        h('select', { id: 'minutes', name: 'minutes' },
          ...data.durations.map((m) => h('option', { value: String(m), selected: m === 30 }, fmt(T, 'minutes', { n: m })))))),
    h('fieldset', {}, h('legend', {}, T.participants),
      h('p', { id: 'code-help', class: 'help' }, T.identity_code_help),
      participantList,
      h('button', {
        type: 'button', class: 'secondary',
        onclick: () => { participantList.append(participantRow()); refreshActsFor(); },
      }, T.add_participant)),
    h('button', { type: 'submit' }, T.create),
  );
  participantList.append(participantRow());
  participantList.addEventListener('input', refreshActsFor);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.textContent = '';
    const value = (name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value;
    const participants = [...participantList.querySelectorAll('fieldset.participant')].map((row) => {
      const get = (name) => /** @type {HTMLInputElement} */ (row.querySelector(`[name=${name}]`)).value;
      const item = { role: get('role'), name: get('name').trim() };
      if (get('identityCode').trim()) item.identityCode = get('identityCode').trim();
      if (get('role') === 'relative' && get('actsFor') !== '') item.actsFor = Number(get('actsFor'));
      return item;
    });
    try {
      const made = await postJson('/visit/api/appointments', {
        type: value('type'), unit: value('unit'), title: value('title'),
        startsAt: new Date(value('startsAt')).toISOString(), minutes: Number(value('minutes')), participants,
      }, data.csrf);
      data.visits = [...data.visits, made].sort((a, b) => a.startsAt.localeCompare(b.startsAt));
      renderCalendar();
      announce(status, fmt(T, 'created', { title: made.title }));
      const first = calendar.querySelector(`[data-id="${made.id}"] input.invitation`);
      if (first) /** @type {HTMLElement} */ (first).focus();
    } catch (error) {
      errors.textContent = fmt(T, 'form_errors', { error: String(/** @type {any} */ (error).message) });
      errors.focus?.();
    }
  });
}

renderCalendar();
buildForm();
