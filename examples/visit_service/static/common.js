// Shared helpers of the visit service's pages: boot data, texts, DOM building, JSON requests.

/** @returns {any} the page's boot data (JSON in <script id="boot">) */
export function boot() {
  const element = document.getElementById('boot');
  return element ? JSON.parse(element.textContent || '{}') : {};
}

/**
 * A text in the page's language, with {name} placeholders filled in.
 * @param {Record<string,string>} texts
 * @param {string} key
 * @param {Record<string, string|number>} [values]
 */
export function fmt(texts, key, values = {}) {
  const text = texts[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

/**
 * Build an element: h('button', {type: 'button', onclick: fn}, 'text', child...).
 * Attributes starting with "on" are listeners; `dataset`/`aria-*` are set as attributes.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node|string|null|undefined|false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      element.className = value;
    } else if (key in element && !key.includes('-') && key !== 'list') {
      /** @type {any} */ (element)[key] = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

/**
 * POST JSON with the session's CSRF token; resolves with the answer or rejects with an Error
 * carrying the server's message.
 * @param {string} url
 * @param {any} body
 * @param {string} csrf
 */
export async function postJson(url, body, csrf) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    answer = {};
  }
  if (!response.ok) {
    const error = new Error(/** @type {any} */ (answer).message || `HTTP ${response.status}`);
    /** @type {any} */ (error).code = /** @type {any} */ (answer).error || String(response.status);
    throw error;
  }
  return answer;
}

/**
 * Say something in a live region (cleared first so the same text is announced again).
 * @param {HTMLElement|null} region
 * @param {string} text
 */
export function announce(region, text) {
  if (!region) return;
  region.textContent = '';
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

/** @param {string} iso @param {string} lang */
export function localTime(iso, lang) {
  const when = new Date(iso);
  return when.toLocaleString(lang === 'fi' ? 'fi-FI' : 'en-GB', {
    weekday: 'short', day: 'numeric', month: 'numeric', hour: '2-digit', minute: '2-digit',
    timeZone: 'Europe/Helsinki',
  });
}
