// Shoal dashboard: plain JavaScript, no dependencies. It reads the node's HTTP API (docs/api.md):
// GET /api/v1/node, /api/v1/peers, /api/v1/jobs, /api/v1/jobs/{id} and the live feed
// GET /api/v1/events (`event: mesh` every second with {node, peers, jobs}).
//
// Every string from the API reaches the page through textContent or setAttribute, never as
// HTML.
'use strict';

(function () {
  // ---------------------------------------------------------------------------------------
  // The token: the server has set its cookie by the time this runs; keep the token out of the
  // address bar, the history and screenshots.
  (function scrubToken() {
    try {
      const url = new URL(window.location.href);
      if (url.searchParams.has('token')) {
        url.searchParams.delete('token');
        const query = url.searchParams.toString();
        history.replaceState(history.state, '', url.pathname + (query ? '?' + query : '') + url.hash);
      }
    } catch (e) {
      /* an odd URL: leave it */
    }
  })();

  // ---------------------------------------------------------------------------------------
  // Small helpers.
  const SVGNS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  /** An element: attrs may hold class, text, title, href, data (object), style (object),
   * on (object of listeners); other keys become attributes. Children: nodes or strings. */
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    apply(e, attrs);
    append(e, children);
    return e;
  }

  function svg(tag, attrs, children) {
    const e = document.createElementNS(SVGNS, tag);
    apply(e, attrs);
    append(e, children);
    return e;
  }

  function apply(e, attrs) {
    if (!attrs) return;
    for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'data') for (const d of Object.keys(v)) e.setAttribute('data-' + d, String(v[d]));
      else if (k === 'style') for (const s of Object.keys(v)) e.style.setProperty(s, String(v[s]));
      else if (k === 'on') for (const ev of Object.keys(v)) e.addEventListener(ev, v[ev]);
      else if (k === 'class') e.setAttribute('class', String(v));
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(e, children) {
    if (children === undefined || children === null) return;
    if (!Array.isArray(children)) children = [children];
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  function setText(e, text) {
    const t = String(text);
    if (e && e.textContent !== t) e.textContent = t;
  }

  /** A finite number, or null. */
  function num(v) {
    if (v === null || v === undefined || v === '' || typeof v === 'boolean') return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  const has = (o, k) => o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k);
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const str = (v) => (v === null || v === undefined ? '' : String(v));
  const DASH = '–';

  function fmtInt(v) {
    const n = num(v);
    return n === null ? DASH : Math.round(n).toLocaleString('en-US');
  }

  function fmtBytes(v) {
    const n = num(v);
    if (n === null) return DASH;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let x = n;
    let i = 0;
    while (Math.abs(x) >= 1024 && i < units.length - 1) {
      x /= 1024;
      i++;
    }
    return (i === 0 ? String(Math.round(x)) : x.toFixed(x < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function fmtMem(mb) {
    const n = num(mb);
    if (n === null) return DASH;
    if (n >= 1024) return (n / 1024).toFixed(n >= 10240 ? 0 : 1) + ' GiB';
    return Math.round(n) + ' MiB';
  }

  function fmtAge(ms) {
    const n = num(ms);
    if (n === null) return DASH;
    if (n < 1000) return Math.round(n) + ' ms';
    if (n < 60000) return (n / 1000).toFixed(n < 10000 ? 1 : 0) + ' s';
    if (n < 3600000) return Math.floor(n / 60000) + ' min';
    return (n / 3600000).toFixed(1) + ' h';
  }

  function fmtDuration(s) {
    const n = num(s);
    if (n === null) return DASH;
    const t = Math.max(0, Math.floor(n));
    const d = Math.floor(t / 86400);
    const h = Math.floor((t % 86400) / 3600);
    const m = Math.floor((t % 3600) / 60);
    const sec = t % 60;
    const p2 = (x) => String(x).padStart(2, '0');
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + p2(m) + 'm';
    if (m > 0) return m + 'm ' + p2(sec) + 's';
    return sec + 's';
  }

  function fmtLoad(v) {
    const n = num(v);
    return n === null ? DASH : n.toFixed(2);
  }

  function fmtRate(r) {
    if (r === null || r === undefined || !Number.isFinite(r)) return DASH;
    return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
  }

  function fmtInput(input) {
    if (!input || typeof input !== 'object') return DASH;
    const size = num(input.size);
    if (size === null) return DASH;
    if (input.unit === 'bytes') return fmtBytes(size);
    return fmtInt(size) + ' ' + (input.unit ? str(input.unit) : '');
  }

  /** A peer id, short: "12D3…Hq7Pn2Xk". */
  function shortPeer(id) {
    const s = str(id);
    return s.length > 16 ? s.slice(0, 4) + '…' + s.slice(-8) : s;
  }

  /** A job id, short: its first 16 hex digits. */
  const shortJob = (id) => str(id).slice(0, 16);

  function statusClass(status) {
    const s = str(status).toLowerCase();
    if (s === 'running') return 'run';
    if (s.startsWith('waiting')) return 'wait';
    if (s === 'complete' || s === 'completed' || s === 'done') return 'ok';
    if (s.startsWith('failed')) return 'fail';
    if (s.startsWith('queued')) return 'queued';
    return 'other';
  }

  const isTerminal = (status) => {
    const c = statusClass(status);
    return c === 'ok' || c === 'fail';
  };

  /** The integer percent of a job (0-100); 100 only once every task is done. */
  function percentOf(job) {
    if (!job) return 0;
    const done = num(job.done);
    const total = num(job.total);
    if (total !== null && total > 0 && done !== null) return clamp(Math.floor((done / total) * 100), 0, 100);
    return statusClass(job.status) === 'ok' ? 100 : 0;
  }

  // A stable palette per node index: distinct hues first, then golden-angle steps.
  const HUES = [212, 28, 145, 352, 268, 46, 186, 318, 96, 8, 238, 164];
  const hue = (i) => (i < HUES.length ? HUES[i] : Math.round((i * 137.508) % 360));

  // ---------------------------------------------------------------------------------------
  // State.
  const S = {
    node: null,
    nodeAt: 0, // when `node` arrived (for the uptime between updates)
    peers: [],
    jobs: [],
    authFailed: false,
    everLive: false,
    lastMesh: 0,
    live: 'connecting',
    backoff: 1000,
    retryAt: 0,
    retryTimer: null,
    samples: new Map(), // job id -> {last: {t, done}, rates: [{t, r}], ended}
    job: { id: null, gen: 0, timer: null, detail: null, lastSeen: false, inflight: false, stopped: false },
  };
  let es = null;
  const SAMPLES_KEPT = 120;

  // ---------------------------------------------------------------------------------------
  // The API.
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    let res;
    try {
      res = await fetch(path, {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' },
      });
    } catch (e) {
      throw new ApiError(0, 'the node does not answer');
    }
    if (res.status === 401) {
      showAuth();
      throw new ApiError(401, 'the token is missing or wrong');
    }
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' ? body.error : 'HTTP ' + res.status;
      throw new ApiError(res.status, msg);
    }
    if (S.authFailed) clearAuth();
    return body;
  }

  function showAuth() {
    if (!S.authFailed) {
      S.authFailed = true;
      if (es) {
        es.close();
        es = null;
      }
    }
    $('auth').hidden = false;
    document.body.classList.add('auth-needed');
    setLive('auth');
  }

  function clearAuth() {
    S.authFailed = false;
    $('auth').hidden = true;
    document.body.classList.remove('auth-needed');
    if (!es) connect();
    if (S.job.id && S.job.timer === null && !S.job.inflight && !S.job.stopped) pollJob(S.job.gen);
  }

  // ---------------------------------------------------------------------------------------
  // The live feed, with a back-off on errors.
  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = null;
    if (S.authFailed) return;
    if (es) es.close();
    setLive(S.everLive ? 'reconnecting' : 'connecting');
    const src = new EventSource('/api/v1/events');
    es = src;
    src.addEventListener('mesh', (ev) => {
      if (es !== src) return;
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      S.backoff = 1000;
      S.everLive = true;
      S.lastMesh = Date.now();
      if (S.authFailed) clearAuth();
      setLive('live');
      onMesh(data);
    });
    src.onerror = () => {
      if (es !== src) return;
      src.close();
      es = null;
      probeThenRetry();
    };
  }

  /** After the feed broke: was it the token? Then wait and connect again. */
  async function probeThenRetry() {
    clearTimeout(S.retryTimer);
    let answered = false;
    try {
      onNode(await api('/api/v1/node'));
      answered = true;
    } catch (e) {
      answered = e instanceof ApiError && e.status !== 0;
    }
    if (S.authFailed) {
      // Check now and then whether a fresh token was opened in another tab.
      setLive('auth');
      S.retryTimer = setTimeout(probeThenRetry, 10000);
      return;
    }
    if (es) return; // a success above reconnected already
    const wait = Math.round(S.backoff * (0.8 + Math.random() * 0.4));
    S.backoff = Math.min(S.backoff * 2, 30000);
    S.retryAt = Date.now() + wait;
    setLive(answered ? 'reconnecting' : 'offline');
    S.retryTimer = setTimeout(connect, wait);
  }

  function setLive(state) {
    S.live = state;
    const box = $('live');
    box.className = 'live ' + state;
    let text;
    let title;
    const secs = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
    switch (state) {
      case 'live':
        text = 'live';
        title = 'Updated every second from /api/v1/events';
        break;
      case 'stale':
        text = 'no update for ' + Math.round((Date.now() - S.lastMesh) / 1000) + ' s';
        title = 'The live feed is open but quiet';
        break;
      case 'reconnecting':
        text = S.retryTimer ? 'reconnecting in ' + secs + ' s' : 'reconnecting';
        title = 'The live feed broke; trying again with a back-off';
        break;
      case 'offline':
        text = 'node unreachable · retry in ' + secs + ' s';
        title = 'The node does not answer';
        break;
      case 'auth':
        text = 'token needed';
        title = "Open the address the node printed at start";
        break;
      default:
        text = 'connecting';
        title = 'Opening the live feed';
    }
    setText($('live-text'), text);
    box.title = title;
  }

  function onMesh(data) {
    if (!data || typeof data !== 'object') return;
    if (data.node && typeof data.node === 'object') onNode(data.node, true);
    if (Array.isArray(data.peers)) S.peers = data.peers;
    if (Array.isArray(data.jobs)) {
      S.jobs = data.jobs;
      const now = Date.now();
      for (const j of S.jobs) if (j && typeof j === 'object') recordSample(j, now);
      forgetSamples();
    }
    renderNode();
    renderPeers();
    renderJobs();
    if (S.job.id) renderThroughput(S.job.id);
  }

  function onNode(node, quiet) {
    if (!node || typeof node !== 'object') return;
    S.node = node;
    S.nodeAt = Date.now();
    document.body.classList.remove('no-data');
    if (!quiet) renderNode();
  }

  async function loadInitial() {
    const [node, peers, jobs] = await Promise.allSettled([
      api('/api/v1/node'),
      api('/api/v1/peers'),
      api('/api/v1/jobs'),
    ]);
    if (S.lastMesh) return; // the feed was faster
    if (node.status === 'fulfilled') {
      onNode(node.value, true);
      renderNode();
    }
    if (peers.status === 'fulfilled' && Array.isArray(peers.value)) {
      S.peers = peers.value;
      renderPeers();
    }
    if (jobs.status === 'fulfilled' && Array.isArray(jobs.value)) {
      S.jobs = jobs.value;
      const now = Date.now();
      for (const j of S.jobs) if (j && typeof j === 'object') recordSample(j, now);
      renderJobs();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Throughput samples, computed here from successive updates.
  function recordSample(job, now) {
    const id = str(job.id);
    const done = num(job.done);
    if (!id || done === null) return;
    let h = S.samples.get(id);
    if (!h) {
      h = { last: null, rates: [], ended: false };
      S.samples.set(id, h);
    }
    if (h.last && done < h.last.done) {
      // The job was restarted or is counted afresh: start over.
      h.rates = [];
      h.last = { t: now, done };
      h.ended = isTerminal(job.status);
      return;
    }
    if (h.ended) return;
    if (h.last) {
      const dt = (now - h.last.t) / 1000;
      if (dt < 0.8) return; // two sources a fraction of a second apart: wait for the next
      h.rates.push({ t: now, r: (done - h.last.done) / dt });
      if (h.rates.length > SAMPLES_KEPT) h.rates.splice(0, h.rates.length - SAMPLES_KEPT);
    }
    h.last = { t: now, done };
    if (isTerminal(job.status)) h.ended = true;
  }

  function forgetSamples() {
    const known = new Set(S.jobs.map((j) => str(j && j.id)));
    if (S.job.id) known.add(S.job.id);
    for (const id of S.samples.keys()) if (!known.has(id)) S.samples.delete(id);
  }

  // ---------------------------------------------------------------------------------------
  // The header: this node.
  function renderNode() {
    const n = S.node;
    if (!n) return;
    const peer = $('node-peer');
    setText(peer, shortPeer(n.peer_id) || DASH);
    peer.title = 'peer id ' + str(n.peer_id);
    setText($('node-id'), n.node_id ? 'node ' + str(n.node_id) : '');
    setText($('node-version'), n.version ? 'v' + str(n.version) : '');

    const mesh = $('node-mesh');
    const kind = str(n.mesh);
    if (kind === 'private') {
      setText(mesh, 'private mesh' + (n.key_fingerprint ? ' · key ' + str(n.key_fingerprint) : ''));
      mesh.className = 'badge private';
      mesh.title = 'Only nodes holding the mesh key can join; the fingerprint names the key, not the key itself';
    } else if (kind === 'open') {
      setText(mesh, 'open mesh');
      mesh.className = 'badge open';
      mesh.title = 'Any node may join this mesh';
    } else {
      setText(mesh, kind || 'mesh ?');
      mesh.className = 'badge';
      mesh.title = '';
    }
    renderUptime();

    const g = n.gossip && typeof n.gossip === 'object' ? n.gossip : {};
    const b = n.blobs && typeof n.blobs === 'object' ? n.blobs : {};
    const free = num(n.slots_free);
    const total = num(n.slots_total);
    const load = num(n.load);
    const cores = num(n.cores);
    const invalid = num(g.invalid_messages);
    const figs = [
      {
        k: 'Slots free',
        v: fmtInt(free) + ' / ' + fmtInt(total),
      },
      { k: 'Load', v: fmtLoad(load), sub: cores !== null ? fmtInt(cores) + ' cores' : '', cls: load !== null && cores && load > cores ? 'warn' : '' },
      { k: 'Memory', v: fmtMem(n.mem_mb) },
      { k: 'Peers', v: fmtInt(n.peers) },
      { k: 'Jobs', v: fmtInt(n.jobs) },
      {
        k: 'Gossip in / out',
        v: fmtInt(g.messages_in) + ' / ' + fmtInt(g.messages_out),
        sub: fmtBytes(g.bytes_in) + ' / ' + fmtBytes(g.bytes_out) + (invalid ? ' · ' + fmtInt(invalid) + ' invalid' : ''),
        cls: invalid ? 'warn' : '',
      },
      {
        k: 'Blobs served / refused',
        v: fmtInt(b.served) + ' / ' + fmtInt(b.refused),
        sub: (num(b.busy) !== null ? 'busy ' + fmtInt(b.busy) : '') + (num(b.banned) ? ' · banned ' + fmtInt(b.banned) : ''),
        cls: num(b.banned) ? 'warn' : '',
      },
      { k: 'Blob store', v: fmtBytes(b.store_bytes), sub: num(b.store_blobs) !== null ? fmtInt(b.store_blobs) + ' blobs' : '' },
    ];
    fillFigures($('node-figures'), figs);
    if (!S.job.id) document.title = 'Shoal · ' + (shortPeer(n.peer_id) || 'node');
  }

  function renderUptime() {
    const n = S.node;
    if (!n) return;
    const up = num(n.uptime_s);
    const extra = S.live === 'live' || S.live === 'stale' ? (Date.now() - S.nodeAt) / 1000 : 0;
    setText($('node-uptime'), up === null ? DASH : fmtDuration(up + extra));
  }

  /** Figures as <div class=fig><dt/><dd/></div>, replaced only when they changed. */
  function fillFigures(dl, figs) {
    const tmp = document.createElement('dl');
    for (const f of figs) {
      tmp.appendChild(
        el('div', { class: 'fig' + (f.cls ? ' ' + f.cls : ''), title: f.title }, [
          el('dt', { text: f.k }),
          el('dd', null, [el('span', { class: 'v', text: f.v }), f.sub ? el('span', { class: 'sub', text: f.sub }) : null]),
        ])
      );
    }
    if (tmp.innerHTML !== dl.innerHTML) dl.replaceChildren(...tmp.childNodes);
  }

  // ---------------------------------------------------------------------------------------
  // Tables: rows keyed by a data attribute and kept across updates (so a click or a text
  // selection survives the next second); a cell is replaced only when its content changed.
  function renderTable(table, cols, items, keyAttr, keyOf, rowClass) {
    const active = cols.filter((c) => !c.when || c.when(items));
    const sig = active.map((c) => c.id).join(',');
    if (table.getAttribute('data-cols') !== sig) {
      const tr = el('tr');
      for (const c of active) tr.appendChild(el('th', { class: /(^| )r( |$)/.test(c.cls || '') ? 'r' : null, title: c.help, scope: 'col', text: c.label }));
      table.tHead.replaceChildren(tr);
      table.setAttribute('data-cols', sig);
    }
    const tbody = table.tBodies[0];
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.getAttribute(keyAttr), tr);
    const seen = new Set();
    let prev = null;
    const scratch = document.createElement('td');
    for (const item of items) {
      if (!item || typeof item !== 'object') continue;
      const key = str(keyOf(item));
      if (seen.has(key)) continue;
      seen.add(key);
      let tr = existing.get(key);
      if (!tr) {
        tr = document.createElement('tr');
        tr.setAttribute(keyAttr, key);
      }
      while (tr.cells.length > active.length) tr.deleteCell(-1);
      active.forEach((c, i) => {
        const td = tr.cells[i] || tr.insertCell(-1);
        const cls = c.cls || '';
        if (td.className !== cls) td.className = cls;
        scratch.replaceChildren();
        append(scratch, c.cell(item));
        if (scratch.innerHTML !== td.innerHTML) td.replaceChildren(...scratch.childNodes);
      });
      const rc = rowClass ? rowClass(item) : '';
      if (tr.className !== rc) tr.className = rc;
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const [k, tr] of existing) if (!seen.has(k)) tr.remove();
  }

  const anyHas = (key) => (items) => items.some((x) => has(x, key));

  // ---------------------------------------------------------------------------------------
  // The mesh: a table of peers and a picture of the connections.
  function connectionOf(p) {
    if (p.is_self) return 'self';
    const c = p.connection;
    if (c === null || c === undefined || c === '') return 'gossip';
    return str(c);
  }

  function slotPips(free, total) {
    const f = num(free);
    const t = num(total);
    const text = fmtInt(f) + '/' + fmtInt(t);
    if (t === null || f === null || t > 16 || t < 1) return el('span', { class: 'num', text });
    const pips = el('span', { class: 'pips', 'aria-hidden': 'true' });
    for (let i = 0; i < t; i++) pips.appendChild(el('i', { class: i < t - f ? 'busy' : 'free' }));
    return el('span', { class: 'slots' }, [pips, el('span', { class: 'num', text })]);
  }

  const PEER_COLS = [
    {
      id: 'peer',
      label: 'Peer',
      cell: (p) => [
        el('span', { class: 'mono', title: 'peer id ' + str(p.peer_id), text: shortPeer(p.peer_id) }),
        p.is_self ? el('span', { class: 'tag self', text: 'this node' }) : null,
        p.stranger
          ? el('span', {
              class: 'tag',
              title: 'not a node of the mesh: listed for the invalid gossip it sent',
              text: 'stranger',
            })
          : null,
      ],
    },
    { id: 'node', label: 'Node', cls: 'mono muted', cell: (p) => str(p.node_id) || DASH },
    {
      id: 'slots',
      label: 'Slots free',
      help: 'free / total task slots',
      cls: 'r',
      cell: (p) => slotPips(p.slots_free, p.slots_total),
    },
    { id: 'cores', label: 'Cores', cls: 'r num', cell: (p) => fmtInt(p.cores) },
    { id: 'mem', label: 'Memory', cls: 'r num', cell: (p) => fmtMem(p.mem_mb) },
    {
      id: 'load',
      label: 'Load',
      help: 'one-minute load average of the machine',
      cls: 'r num',
      cell: (p) => {
        const l = num(p.load);
        const c = num(p.cores);
        return el('span', { class: l !== null && c && l > c ? 'hot' : '', text: fmtLoad(l) });
      },
    },
    {
      id: 'age',
      label: 'Advert age',
      help: 'time since this node last heard the peer’s capacity advert',
      cls: 'r num',
      cell: (p) => {
        if (p.is_self) return el('span', { class: 'muted', text: DASH });
        const a = num(p.advert_age_ms);
        return el('span', { class: a !== null && a > 10000 ? 'stale' : '', text: fmtAge(a) });
      },
    },
    {
      id: 'conn',
      label: 'Connection',
      cell: (p) => {
        const c = connectionOf(p);
        if (c === 'self') return el('span', { class: 'muted', text: DASH });
        return el('span', {
          class: 'conn ' + (c === 'gossip' ? 'gossip' : 'direct'),
          title: c === 'gossip' ? 'no direct connection: heard of through gossip only' : 'direct connection over ' + c,
          text: c,
        });
      },
    },
    {
      id: 'tags',
      label: 'Tags',
      when: anyHas('tags'),
      cell: (p) => {
        const t = p.tags;
        if (Array.isArray(t)) return t.length ? t.map((x) => el('span', { class: 'tag', text: typeof x === 'string' ? x : JSON.stringify(x) })) : '';
        if (t === null || t === undefined) return '';
        return el('span', { class: 'tag', text: typeof t === 'string' ? t : JSON.stringify(t) });
      },
    },
    {
      id: 'gossip',
      label: 'Gossip',
      when: (rows) => rows.some((p) => p && typeof p.gossip_score === 'number' && p.gossip_score < 0),
      help: 'its gossip score here: 0 for an honest peer, lower for each invalid message it passed on; graylisted: its messages are ignored',
      cell: (p) =>
        typeof p.gossip_score === 'number' && p.gossip_score < 0
          ? el('span', {
              class: 'tag bad',
              text: (p.graylisted ? 'graylisted: ' : '') + 'score ' + Math.round(p.gossip_score),
            })
          : el('span', { class: 'muted', text: 'ok' }),
    },
    {
      id: 'suspect',
      label: 'Suspect',
      when: anyHas('suspect'),
      help: 'its results lost votes: this node gives it no work for a while',
      cell: (p) =>
        p.suspect
          ? el('span', {
              class: 'tag bad',
              text: 'suspect: ' + fmtInt(p.lost_votes || 0) + ' vote(s) lost, ' + fmtInt(Math.ceil((p.suspect_ms || 0) / 1000)) + ' s left',
            })
          : el('span', { class: 'muted', text: 'no' }),
    },
  ];

  // The shared datasets (`shoal node --share NAME=DIR`): one row per dataset, its parts and
  // who holds them. Not part of the live feed: fetched every few seconds.
  const DATASET_COLS = [
    { id: 'name', label: 'Dataset', cls: 'mono', cell: (d) => str(d.name) },
    { id: 'parts', label: 'Parts', cls: 'r num', cell: (d) => fmtInt(Array.isArray(d.parts) ? d.parts.length : 0) },
    { id: 'chunks', label: 'Chunks', cls: 'r num', cell: (d) => fmtInt(d.chunks) },
    { id: 'bytes', label: 'Size', cls: 'r num', cell: (d) => fmtBytes(d.bytes) },
    {
      id: 'holders',
      label: 'Held by',
      help: 'the nodes sharing each part (node ids); a part held twice is one part with two holders',
      cell: (d) =>
        (Array.isArray(d.parts) ? d.parts : []).map((p) =>
          el('span', {
            class: 'tag mono',
            title: 'part ' + str(p.manifest) + ': ' + fmtInt(p.chunks) + ' chunks, ' + fmtBytes(p.bytes),
            text: (Array.isArray(p.holders) ? p.holders : []).map(str).join(' + '),
          })
        ),
    },
  ];

  function renderDatasets(rows) {
    const items = (Array.isArray(rows) ? rows : []).filter((d) => d && typeof d === 'object');
    $('datasets-card').hidden = items.length === 0;
    renderTable($('datasets'), DATASET_COLS, items, 'data-dataset', (d) => d.name, () => '');
    setText($('datasets-summary'), items.length + (items.length === 1 ? ' dataset' : ' datasets') + ' shared in the mesh');
  }

  async function loadDatasets() {
    try {
      renderDatasets(await api('/api/v1/datasets'));
    } catch (e) {
      // A node without the endpoint, or a moment offline: the next try may work.
    }
  }

  function renderPeers() {
    const peers = S.peers.filter((p) => p && typeof p === 'object');
    renderTable(
      $('peers'),
      PEER_COLS,
      peers,
      'data-peer',
      (p) => p.peer_id,
      (p) => (p.is_self ? 'self' : p.suspect ? 'suspect' : '')
    );
    // Strangers are listed for their gossip score; they are not nodes of the mesh.
    const nodes = peers.filter((p) => !p.stranger);
    const others = nodes.filter((p) => !p.is_self);
    $('peers-empty').hidden = others.length > 0;
    let free = 0;
    let total = 0;
    let direct = 0;
    for (const p of nodes) {
      free += num(p.slots_free) || 0;
      total += num(p.slots_total) || 0;
      if (!p.is_self && connectionOf(p) !== 'gossip') direct++;
    }
    const suspects = others.filter((p) => p.suspect).length;
    setText(
      $('mesh-summary'),
      nodes.length +
        (nodes.length === 1 ? ' node' : ' nodes') +
        ' · ' +
        direct +
        ' direct · ' +
        (others.length - direct) +
        ' gossip only' +
        (suspects ? ' · ' + suspects + ' suspect' : '') +
        ' · ' +
        free +
        '/' +
        total +
        ' slots free'
    );
    renderMeshPicture(nodes);
  }

  function renderMeshPicture(peers) {
    const box = $('mesh-svg');
    const W = 240;
    const H = 200;
    const cx = W / 2;
    const cy = H / 2;
    const self = peers.find((p) => p.is_self);
    const others = peers.filter((p) => !p.is_self);
    const n = others.length;
    const R = n > 12 ? 82 : 66;
    const labels = n <= 12;
    const g = [];
    const pos = others.map((p, i) => {
      const a = -Math.PI / 2 + (n ? (i * 2 * Math.PI) / n : 0);
      return { p, x: cx + R * Math.cos(a), y: cy + R * Math.sin(a) };
    });
    for (const { p, x, y } of pos) {
      const c = connectionOf(p);
      g.push(
        svg('line', {
          x1: cx,
          y1: cy,
          x2: x.toFixed(1),
          y2: y.toFixed(1),
          class: 'link ' + (c === 'gossip' ? 'gossip' : 'direct') + (p.suspect ? ' suspect' : ''),
        })
      );
    }
    const r = n > 20 ? 5 : 8;
    for (const { p, x, y } of pos) {
      const c = connectionOf(p);
      const busy = num(p.slots_free) === 0 && num(p.slots_total) > 0;
      const tip =
        shortPeer(p.peer_id) +
        ' (node ' + str(p.node_id) + ')\n' +
        (c === 'gossip' ? 'gossip only' : 'direct: ' + c) +
        '\nslots free ' + fmtInt(p.slots_free) + '/' + fmtInt(p.slots_total) +
        ' · load ' + fmtLoad(p.load) +
        (p.suspect ? '\nsuspect' : '');
      const kids = [
        svg('title', { text: tip }),
        svg('circle', {
          cx: x.toFixed(1),
          cy: y.toFixed(1),
          r,
          class: 'peer' + (busy ? ' busy' : '') + (c === 'gossip' ? ' far' : '') + (p.suspect ? ' suspect' : ''),
        }),
      ];
      if (labels) {
        const below = y >= cy - 1;
        kids.push(
          svg('text', {
            x: x.toFixed(1),
            y: (below ? y + r + 11 : y - r - 5).toFixed(1),
            class: 'lbl',
            'text-anchor': 'middle',
            text: str(p.node_id).slice(0, 8) || shortPeer(p.peer_id),
          })
        );
      }
      g.push(svg('g', { 'data-mesh-peer': str(p.peer_id) }, kids));
    }
    g.push(
      svg('g', null, [
        svg('title', { text: 'this node' + (self ? ' · ' + shortPeer(self.peer_id) : '') }),
        svg('circle', { cx, cy, r: 13, class: 'me' }),
        svg('text', { x: cx, y: cy + 3.5, class: 'me-lbl', 'text-anchor': 'middle', text: 'me' }),
      ])
    );
    if (!n) g.push(svg('text', { x: cx, y: H - 14, class: 'lbl', 'text-anchor': 'middle', text: 'no peers yet' }));
    box.replaceChildren(...g);
  }

  // ---------------------------------------------------------------------------------------
  // Jobs.
  function statusPill(status) {
    const s = str(status) || 'unknown';
    const c = statusClass(s);
    if (c === 'fail') {
      const reason = s.replace(/^failed:?\s*/i, '');
      return el('span', { class: 'status fail', title: s, text: reason ? 'failed' : s });
    }
    return el('span', { class: 'status ' + c, text: s });
  }

  function progressBar(job) {
    const pct = percentOf(job);
    const c = statusClass(job.status);
    return el('div', { class: 'progress ' + c, data: { percent: pct }, title: fmtInt(job.done) + ' / ' + fmtInt(job.total) + ' tasks' }, [
      el('div', { class: 'bar' }, el('div', { class: 'fill', style: { width: pct + '%' } })),
      el('span', { class: 'pct num', text: pct + '%' }),
    ]);
  }

  function nodeName(nodeId) {
    const id = str(nodeId);
    if (!id) return DASH;
    if (S.node && str(S.node.node_id) === id) return 'this node';
    return id;
  }

  const JOB_COLS = [
    {
      id: 'id',
      label: 'Job',
      cls: 'mono',
      cell: (j) => el('a', { href: '#/jobs/' + encodeURIComponent(str(j.id)), title: str(j.id), text: shortJob(j.id) || DASH }),
    },
    { id: 'op', label: 'Operator', cell: (j) => str(j.op) || DASH },
    {
      id: 'status',
      label: 'Status',
      cell: (j) => {
        const s = str(j.status);
        const pill = statusPill(s);
        if (statusClass(s) !== 'fail') return pill;
        return [pill, ' ', el('span', { class: 'reason muted small', title: s, text: s.replace(/^failed:?\s*/i, '') })];
      },
    },
    { id: 'progress', label: 'Progress', cls: 'w-progress', cell: (j) => progressBar(j) },
    {
      id: 'tasks',
      label: 'Tasks done',
      cls: 'r num',
      cell: (j) => fmtInt(j.done) + ' / ' + fmtInt(j.total),
    },
    { id: 'workers', label: 'Workers', cls: 'r num', help: 'nodes that completed tasks of the job', cell: (j) => fmtInt(j.workers) },
    { id: 'members', label: 'Members', cls: 'r num', when: anyHas('members'), cell: (j) => fmtInt(j.members) },
    {
      id: 'priority',
      label: 'Priority',
      cls: 'r num',
      when: anyHas('priority'),
      cell: (j) => (j.priority === null || j.priority === undefined ? DASH : typeof j.priority === 'object' ? JSON.stringify(j.priority) : str(j.priority)),
    },
    {
      id: 'needs',
      label: 'Needs',
      when: (jobs) => jobs.some((j) => Array.isArray(j.needs) && j.needs.length),
      help: 'what a node must have to run its tasks',
      cell: (j) => (Array.isArray(j.needs) ? j.needs.map((x) => el('span', { class: 'tag', text: str(x) })) : ''),
    },
    { id: 'input', label: 'Input', cls: 'r num', when: anyHas('input'), cell: (j) => fmtInput(j.input) },
    {
      id: 'submitter',
      label: 'Submitted by',
      cls: 'mono muted',
      when: anyHas('submitter'),
      cell: (j) => nodeName(j.submitter),
    },
  ];

  function renderJobs() {
    const jobs = S.jobs.filter((j) => j && typeof j === 'object');
    renderTable($('jobs'), JOB_COLS, jobs, 'data-job', (j) => j.id, (j) => 'st-' + statusClass(j.status));
    for (const tr of $('jobs').tBodies[0].rows) if (!tr.hasAttribute('tabindex')) tr.tabIndex = 0;
    $('jobs-empty').hidden = jobs.length > 0;
    const counts = {};
    for (const j of jobs) {
      const c = statusClass(j.status);
      counts[c] = (counts[c] || 0) + 1;
    }
    const names = { run: 'running', wait: 'waiting for capacity', queued: 'queued', ok: 'complete', fail: 'failed', other: 'other' };
    const parts = Object.keys(names)
      .filter((k) => counts[k])
      .map((k) => counts[k] + ' ' + names[k]);
    setText($('jobs-summary'), parts.join(' · '));
  }

  function openJobFromRow(ev) {
    if (ev.target.closest('a')) return; // the link does it
    const tr = ev.target.closest('tr[data-job]');
    if (!tr) return;
    if (ev.type === 'keydown' && ev.key !== 'Enter') return;
    location.hash = '#/jobs/' + encodeURIComponent(tr.getAttribute('data-job'));
  }

  // ---------------------------------------------------------------------------------------
  // One job's page.
  function route() {
    const m = /^#\/jobs\/([^/?#]+)/.exec(location.hash);
    if (m) {
      let id;
      try {
        id = decodeURIComponent(m[1]);
      } catch (e) {
        id = m[1];
      }
      openJob(id);
    } else {
      closeJob();
    }
  }

  function closeJob() {
    stopJobPoll();
    S.job = { id: null, gen: S.job.gen + 1, timer: null, detail: null, lastSeen: false, inflight: false, stopped: false };
    $('job').hidden = true;
    $('overview').hidden = false;
    renderNode();
  }

  function stopJobPoll() {
    if (S.job.timer !== null) clearTimeout(S.job.timer);
    S.job.timer = null;
  }

  function openJob(id) {
    if (S.job.id === id && !$('job').hidden) return;
    stopJobPoll();
    S.job = { id, gen: S.job.gen + 1, timer: null, detail: null, lastSeen: false, inflight: false, stopped: false };
    $('overview').hidden = true;
    $('job').hidden = false;
    // A clean page until the first answer.
    setText($('job-id'), shortJob(id));
    $('job-id').title = id;
    setText($('job-op'), '');
    setText($('job-status'), 'loading');
    $('job-status').className = 'status other';
    setText($('job-percent'), '0');
    $('job-bar').style.width = '0%';
    setText($('job-count'), '');
    setText($('job-updated'), '');
    $('job-figures').replaceChildren();
    $('job-error').hidden = true;
    $('grid').replaceChildren();
    $('grid-legend').replaceChildren();
    setText($('grid-summary'), '');
    $('tree').replaceChildren();
    setText($('tree-summary'), '');
    $('why').replaceChildren();
    renderThroughput(id);
    renderNode();
    window.scrollTo(0, 0);
    // Show the row from the feed while the detail loads.
    const row = S.jobs.find((j) => j && str(j.id) === id);
    if (row) renderJobHead(row, null);
    pollJob(S.job.gen);
  }

  /** The detail, whichever shape it comes in: {job, tasks, tree, grid, why} or a bare row. */
  function normalise(d) {
    if (d && typeof d === 'object' && d.job && typeof d.job === 'object') return d;
    if (d && typeof d === 'object' && has(d, 'id')) return { job: d };
    return { job: {} };
  }

  async function pollJob(gen) {
    if (gen !== S.job.gen || !S.job.id || S.job.inflight) return;
    S.job.timer = null;
    S.job.inflight = true;
    const id = S.job.id;
    let answer;
    let failure = null;
    try {
      answer = await api('/api/v1/jobs/' + encodeURIComponent(id));
    } catch (e) {
      failure = e;
    }
    if (gen !== S.job.gen) return;
    S.job.inflight = false;
    const next = failure ? jobFailed(failure, id) : jobAnswered(answer, id);
    if (next !== null && gen === S.job.gen && S.job.timer === null) S.job.timer = setTimeout(() => pollJob(gen), next);
  }

  /** Shows one answer; the delay to the next poll, or null to stop. */
  function jobAnswered(answer, id) {
    const detail = normalise(answer);
    S.job.detail = detail;
    if (!detail.job.id) detail.job.id = id;
    recordSample(detail.job, Date.now());
    $('job-error').hidden = true;
    renderJob(detail);
    if (isTerminal(detail.job.status)) {
      // One more update after the end (the last results may still be landing), then stop.
      if (S.job.lastSeen) {
        S.job.stopped = true;
        setText($('job-updated'), 'final · ' + new Date().toLocaleTimeString());
        return null;
      }
      S.job.lastSeen = true;
    }
    return 1000;
  }

  /** Shows why the job could not be read; the delay to the next poll, or null to stop. */
  function jobFailed(e, id) {
    if (e.status === 401) return null; // the banner says it; clearAuth() resumes
    const err = $('job-error');
    err.hidden = false;
    if (e.status === 404) {
      setText(err, 'This node does not know job ' + id + ' (' + e.message + '). It may have ended and been forgotten, or it was submitted elsewhere.');
      setText($('job-status'), 'unknown');
      $('job-status').className = 'status other';
      return 5000;
    }
    if (e.status === 400) {
      setText(err, e.message);
      setText($('job-status'), 'invalid id');
      $('job-status').className = 'status fail';
      S.job.stopped = true;
      return null;
    }
    setText(err, 'Could not load the job: ' + e.message + '. Retrying…');
    return 3000;
  }

  function renderJobHead(job, tasks, placement) {
    const id = S.job.id;
    const st = $('job-status');
    const status = str(job.status) || 'unknown';
    setText(st, status);
    st.className = 'status ' + statusClass(status);
    st.title = status;
    setText($('job-op'), str(job.op));
    const pct = percentOf(job);
    setText($('job-percent'), String(pct));
    const bar = $('job-bar');
    bar.style.width = pct + '%';
    bar.parentElement.className = 'bar big-bar ' + statusClass(status);
    setText($('job-count'), fmtInt(job.done) + ' / ' + fmtInt(job.total) + ' tasks done');
    setText($('job-updated'), 'updated ' + new Date().toLocaleTimeString());

    const figs = [];
    if (tasks && typeof tasks === 'object') {
      figs.push({ k: 'Waiting', v: fmtInt(tasks.waiting), title: 'tasks waiting for their children' });
      figs.push({ k: 'Ready', v: fmtInt(tasks.ready), title: 'tasks ready and not yet claimed' });
      figs.push({ k: 'Claimed', v: fmtInt(tasks.claimed), title: 'tasks claimed or running', sub: has(tasks, 'running') ? fmtInt(tasks.running) + ' running' : '' });
      figs.push({ k: 'Done', v: fmtInt(tasks.done) });
    }
    if (has(job, 'maps')) figs.push({ k: 'Map tasks', v: fmtInt(job.maps), sub: has(job, 'maps_done') ? fmtInt(job.maps_done) + ' done' : '' });
    if (has(job, 'depth')) figs.push({ k: 'Tree depth', v: fmtInt(job.depth) });
    if (has(job, 'workers')) figs.push({ k: 'Workers', v: fmtInt(job.workers), sub: has(job, 'members') ? fmtInt(job.members) + ' members' : '' });
    if (has(job, 'priority')) figs.push({ k: 'Priority', v: job.priority === null ? DASH : typeof job.priority === 'object' ? JSON.stringify(job.priority) : str(job.priority) });
    if (Array.isArray(job.needs) && job.needs.length) figs.push({ k: 'Needs', v: job.needs.map(str).join(' '), title: 'what a node must have to run its tasks (shoal submit --needs)' });
    if (has(job, 'input')) figs.push({ k: 'Input', v: fmtInput(job.input) });
    if (has(job, 'replicas') && job.replicas > 1) figs.push({ k: 'Replicas', v: fmtInt(job.replicas), title: 'distinct members whose results must agree for each task' });
    if (Array.isArray(job.suspects) && job.suspects.length) {
      figs.push({
        k: 'Suspects',
        v: fmtInt(job.suspects.length),
        sub: job.suspects.map((x) => nodeName(x.node_id) + ' lost ' + fmtInt(x.lost)).join(' · '),
        title: 'members whose results lost votes in this job',
      });
    }
    if (job.here && typeof job.here === 'object') {
      figs.push({
        k: 'Here',
        v: fmtInt(job.here.running) + ' running',
        sub: fmtInt(job.here.holding) + ' held · ' + fmtInt(job.here.interior) + ' interior',
        title: 'tasks this node runs now, results only it holds, and interior tree tasks here',
      });
    }
    if (has(job, 'submitter')) figs.push({ k: 'Submitted by', v: nodeName(job.submitter) });
    if (has(job, 'coordinator') && job.coordinator && job.coordinator !== job.submitter) {
      figs.push({
        k: 'Coordinated by',
        v: nodeName(job.coordinator),
        sub: 'successor: the submitter went silent',
        title: 'the member that took over announcing, recruiting and collecting the job',
      });
    }
    if (has(job, 'copies') && job.copies > 1) {
      figs.push({
        k: 'Copies',
        v: fmtInt(job.copies_held) + ' / ' + fmtInt(job.copies),
        sub: 'live holders of the worst-kept input piece',
        title: 'a durable job keeps this many copies of its input and output on live members',
      });
    }
    if (has(job, 'reused') && job.reused > 0) {
      figs.push({
        k: 'Reused',
        v: fmtInt(job.reused) + ' tasks',
        sub: 'results kept from earlier jobs, not computed again',
        title: 'tasks whose result a member kept from an earlier job with the same operator and input',
      });
    }
    if (job.alone === true) {
      figs.push({
        k: 'Path',
        v: 'alone on its submitter',
        sub: 'no other member, nothing on the wire',
        title: 'a small job whose every task started at once on its submitter\'s idle slots runs there by itself (the real-time path); jobs with replicas, spot checks, copies or a dataset never do',
      });
    }
    if (has(job, 'at_data') && (job.at_data > 0 || job.bytes_moved > 0)) {
      figs.push({
        k: 'At the data',
        v: fmtInt(job.at_data) + ' / ' + fmtInt(job.maps) + ' maps',
        sub: fmtInt(job.bytes_moved) + ' input bytes moved',
        title: 'map tasks computed on a node that held their input (the submitter, or a holder of a shared dataset part), and input bytes that crossed the network',
      });
    }
    if (Array.isArray(placement) && placement.length) {
      const busy = placement.filter((p) => p && (p.running || p.claimed));
      if (busy.length) {
        figs.push({
          k: 'Running on',
          v: fmtInt(busy.length) + ' node(s)',
          sub: busy.slice(0, 4).map((p) => nodeName(p.node_id) + ' ' + fmtInt(p.running) + ' running, ' + fmtInt(p.claimed) + ' claimed').join(' · '),
          title: 'where the claimed and running tasks are (shoal why lists every node)',
        });
      }
    }
    fillFigures($('job-figures'), figs);
    document.title = status + ' ' + pct + '% · job ' + shortJob(id).slice(0, 8) + ' · Shoal';
  }

  function renderJob(detail) {
    const job = detail.job;
    renderJobHead(job, detail.tasks, detail.placement);
    renderGrid(detail.grid, detail.tree, job, Math.max(1, Math.floor(num(detail.tasks_per_run) || 1)));
    renderTree(detail.tree);
    renderWhy(detail.why, job);
    renderThroughput(S.job.id);
  }

  /** Where a task index falls in the tree: its level, from `tree`. */
  function levelOf(tree, index) {
    if (!Array.isArray(tree)) return null;
    let acc = 0;
    for (let i = 0; i < tree.length; i++) {
      acc += num(tree[i] && tree[i].tasks) || 0;
      if (index < acc) return i === tree.length - 1 && (num(tree[i].tasks) || 0) === 1 ? 'root' : 'level ' + (num(tree[i].level) ?? i);
    }
    return null;
  }

  const STATE_NAMES = ['waiting', 'ready', 'claimed / running', 'done'];

  function renderGrid(grid, tree, job, runs) {
    const box = $('grid');
    // A job of many tiny tasks is claimed in runs (a subtree each): its cells are the runs and
    // the reduces above them, the levels of `tree` from the runs' level up.
    let cellTree = tree;
    let leaves = 0;
    if (runs > 1 && Array.isArray(tree) && tree.length) {
      leaves = Math.ceil((num(tree[0] && tree[0].tasks) || 0) / runs);
      const at = tree.findIndex((l, i) => i > 0 && num(l && l.tasks) === leaves);
      if (at > 0) cellTree = tree.slice(at);
    }
    const g = grid && typeof grid === 'object' ? grid : {};
    const cells = Array.isArray(g.cells) ? g.cells : [];
    const nodes = Array.isArray(g.nodes) ? g.nodes.map(str) : [];
    const per = Math.max(1, Math.floor(num(g.tasks_per_cell) || 1));
    const size = cells.length <= 320 ? 'l' : cells.length <= 1200 ? 'm' : cells.length <= 2600 ? 's' : 'xs';
    if (box.getAttribute('data-size') !== size) box.setAttribute('data-size', size);
    while (box.children.length > cells.length) box.lastElementChild.remove();
    while (box.children.length < cells.length) box.appendChild(el('div', { class: 'cell' }));
    const held = nodes.map(() => ({ done: 0, running: 0 }));
    const byState = [0, 0, 0, 0];
    for (let i = 0; i < cells.length; i++) {
      const c = Array.isArray(cells[i]) ? cells[i] : [0, -1];
      const state = clamp(Math.floor(num(c[0]) || 0), 0, 3);
      const raw = num(c[1]);
      const node = raw !== null && raw >= 0 ? Math.floor(raw) : -1;
      byState[state]++;
      if (node >= 0 && node < held.length) {
        if (state === 3) held[node].done++;
        else if (state === 2) held[node].running++;
      }
      const d = box.children[i];
      const key = state + ':' + node;
      if (d._k === key) continue;
      d._k = key;
      d.className = 'cell s' + state + (node < 0 ? ' nn' : '');
      if (node >= 0) d.style.setProperty('--h', String(hue(node)));
      else d.style.removeProperty('--h');
      const first = i * per;
      const what = runs > 1
        ? (per === 1 && first < leaves ? 'run ' + first + ' (map tasks ' + fmtInt(first * runs) + '–' + fmtInt((first + 1) * runs - 1) + ')' : 'runs and reduces ' + first + (per > 1 ? '–' + (first + per - 1) : ''))
        : per === 1 ? 'task ' + first : 'tasks ' + first + '–' + (first + per - 1);
      const lvl = levelOf(cellTree, first);
      const who = node >= 0 ? (node < nodes.length ? nodeName(nodes[node]) : 'node #' + node) : '';
      d.title = what + (lvl ? ' · ' + lvl : '') + ' · ' + STATE_NAMES[state] + (who ? (state === 3 ? ' · held by ' : ' · on ') + who : '');
    }
    const total = num(job && job.total);
    setText(
      $('grid-summary'),
      cells.length
        ? (runs > 1
            ? (total !== null ? fmtInt(total) + ' tasks claimed in runs of ' + fmtInt(runs) + ': ' : '') + (per === 1 ? cells.length + ' runs and reduces' : fmtInt(cells.length) + ' cells of ' + per + ' runs and reduces')
            : per === 1 ? cells.length + ' tasks' : (total !== null ? fmtInt(total) + ' tasks in ' : '') + fmtInt(cells.length) + ' cells of ' + per) +
            ' · ' + byState[3] + ' done · ' + byState[2] + ' running · ' + byState[1] + ' ready · ' + byState[0] + ' waiting'
        : 'no task grid in this answer'
    );

    // The legend of nodes: colour, id, what each holds.
    const legend = document.createElement('div');
    nodes.forEach((id, i) => {
      const peer = S.peers.find((p) => p && str(p.node_id) === id);
      legend.appendChild(
        el('span', { class: 'lg', title: peer ? 'peer ' + str(peer.peer_id) : 'node ' + id }, [
          el('span', { class: 'sw s3', style: { '--h': hue(i) } }),
          el('span', { class: 'mono', text: id }),
          S.node && str(S.node.node_id) === id ? el('span', { class: 'tag self', text: 'this node' }) : null,
          el('span', { class: 'muted', text: held[i].done + ' done' + (held[i].running ? ' · ' + held[i].running + ' running' : '') }),
        ])
      );
    });
    const target = $('grid-legend');
    if (legend.innerHTML !== target.innerHTML) target.replaceChildren(...legend.childNodes);
  }

  function renderTree(tree) {
    const box = $('tree');
    const levels = Array.isArray(tree) ? tree.filter((l) => l && typeof l === 'object') : [];
    const tmp = document.createElement('div');
    levels.forEach((l, i) => {
      const tasks = num(l.tasks) || 0;
      const done = clamp(num(l.done) || 0, 0, tasks || Infinity);
      const pct = tasks > 0 ? (done / tasks) * 100 : 0;
      const level = num(l.level) ?? i;
      const isRoot = i === levels.length - 1 && levels.length > 1 && tasks === 1;
      const name = level === 0 ? 'L0 · map' : isRoot ? 'L' + level + ' · root' : 'L' + level;
      tmp.appendChild(
        el('div', { class: 'lvl' + (tasks > 0 && done >= tasks ? ' full' : ''), title: 'level ' + level + ': ' + done + ' of ' + tasks + ' tasks done' }, [
          el('span', { class: 'name', text: name }),
          el('span', { class: 'bar' }, el('span', { class: 'fill', style: { width: pct.toFixed(1) + '%' } })),
          el('span', { class: 'cnt num', text: fmtInt(done) + ' / ' + fmtInt(tasks) }),
        ])
      );
    });
    if (!levels.length) tmp.appendChild(el('p', { class: 'muted small', text: 'No tree in this answer.' }));
    if (tmp.innerHTML !== box.innerHTML) box.replaceChildren(...tmp.childNodes);
    setText($('tree-summary'), levels.length ? levels.length + ' levels' : '');
  }

  function renderWhy(why, job) {
    const ul = $('why');
    const tmp = document.createElement('ul');
    const list = Array.isArray(why) ? why : why ? [why] : [];
    for (const s of list) tmp.appendChild(el('li', { text: typeof s === 'string' ? s : JSON.stringify(s) }));
    if (!list.length) {
      const c = statusClass(job && job.status);
      const text =
        c === 'ok' ? 'The job is complete.' : c === 'fail' ? str(job.status) : Array.isArray(why) ? 'Nothing is held up.' : 'No explanation in this answer.';
      tmp.appendChild(el('li', { class: 'muted', text }));
    }
    if (tmp.innerHTML !== ul.innerHTML) ul.replaceChildren(...tmp.childNodes);
  }

  function niceCeil(x) {
    if (x <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function renderThroughput(id) {
    const box = $('tput');
    if (!box || !id) return;
    const h = S.samples.get(id);
    const rates = h ? h.rates : [];
    const W = 400;
    const H = 110;
    const top = 6;
    const kids = [];
    const max = niceCeil(Math.max(1, ...rates.map((s) => s.r)));
    for (const f of [0.5, 1]) {
      const y = H - (H - top) * f;
      kids.push(svg('line', { x1: 0, x2: W, y1: y, y2: y, class: 'gridline' }));
    }
    kids.push(svg('line', { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: 'axis' }));
    // Time runs right to left from the newest sample, over at least two minutes.
    const newest = rates.length ? rates[rates.length - 1].t : 0;
    const windowMs = rates.length ? Math.max(120000, newest - rates[0].t) : 120000;
    if (rates.length >= 2) {
      const n = rates.length;
      const pts = rates.map((s) => {
        const x = W - ((newest - s.t) / windowMs) * W;
        const y = H - (H - top) * (s.r / max);
        return [x, y];
      });
      const line = pts.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' ');
      const area = 'M' + pts[0][0].toFixed(1) + ',' + H + ' L' + line.split(' ').join(' L') + ' L' + pts[n - 1][0].toFixed(1) + ',' + H + ' Z';
      kids.push(svg('path', { d: area, class: 'area' }));
      kids.push(svg('polyline', { points: line, class: 'line' }));
    }
    box.replaceChildren(...kids);
    setText($('tput-max'), rates.length >= 2 ? fmtRate(max) + ' /s' : '');
    setText($('tput-span'), Math.round(windowMs / 6000) / 10 + ' min ago');
    if (rates.length < 2) {
      setText($('tput-summary'), h && h.ended ? 'ended before enough samples' : 'collecting samples…');
      return;
    }
    const nowR = rates[rates.length - 1].r;
    const peak = Math.max(...rates.map((s) => s.r));
    const mean = rates.reduce((a, s) => a + s.r, 0) / rates.length;
    setText($('tput-summary'), 'now ' + fmtRate(nowR) + ' · mean ' + fmtRate(mean) + ' · peak ' + fmtRate(peak) + ' tasks/s');
  }

  // ---------------------------------------------------------------------------------------
  // Every second: the uptime, and whether the feed went quiet.
  function tick() {
    renderUptime();
    if ((S.live === 'live' || S.live === 'stale') && S.lastMesh && Date.now() - S.lastMesh > 5000) setLive('stale');
    else if (S.live === 'reconnecting' || S.live === 'offline') setLive(S.live);
  }

  // ---------------------------------------------------------------------------------------
  // Start.
  const jobsBody = $('jobs').tBodies[0];
  jobsBody.addEventListener('click', openJobFromRow);
  jobsBody.addEventListener('keydown', openJobFromRow);
  window.addEventListener('hashchange', route);
  setInterval(tick, 1000);
  loadDatasets();
  setInterval(loadDatasets, 5000);
  route();
  loadInitial().finally(() => {
    if (!S.authFailed) connect();
    else probeThenRetry();
  });
})();
