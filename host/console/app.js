// The rollout console, injected by the bootstrap (boot.js) once signed in: the rollout flags
// (percentages editable, rollback, rollback of every feature, who moved), the live A/B
// comparison (charts of /admin/timeseries, drawn with the vendored uPlot), the policy canary
// (/admin/canary) and the bundle and cluster (/admin/bundle). Every request carries the
// admin token; the DOM is built with textContent only, never from markup strings.
(function () {
  'use strict';

  // The console refreshes at the series' interval, within these bounds.
  var REFRESH_MIN_MS = 1000;
  var REFRESH_MAX_MS = 5000;
  // Disagreements listed (the server keeps more).
  var SHOWN_DISAGREEMENTS = 10;
  // Of them, shown open (the others are collapsed).
  var OPEN_DISAGREEMENTS = 2;

  // Where users in (and out of) each feature's rollout go.
  var FEATURES = {
    wasm_engine: { in: 'the component (wasm path)', out: 'the native path' },
    decision_cache: { in: 'the decision cache', out: 'evaluation without the cache' },
    policy_canary: { in: 'the candidate bundle', out: 'the active bundle' },
  };
  var COLORS = { wasm: '#1f6feb', native: '#c2570c', cache: '#6e7781' };
  var DASHES = { p50: null, p95: [7, 4], p99: [2, 3] };
  var CHART_HEIGHT = 190;

  // ---- DOM helpers -------------------------------------------------------------------

  // An element with attributes (`text` sets its text, `on<event>` adds a listener) and
  // children (nodes or text).
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) {
        return;
      }
      if (key === 'text') {
        node.textContent = value;
      } else if (key.slice(0, 2) === 'on') {
        node.addEventListener(key.slice(2), value);
      } else {
        node.setAttribute(key, value === true ? '' : String(value));
      }
    });
    for (var i = 2; i < arguments.length; i++) {
      append(node, arguments[i]);
    }
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) {
      return;
    }
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(node, c); });
    } else {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  // Replaces a <dl>'s content with `pairs` of [term, description, id of the description].
  function facts(dl, pairs) {
    clear(dl);
    pairs.forEach(function (pair) {
      dl.append(el('dt', { text: pair[0] }), el('dd', { id: pair[2] || null }, pair[1]));
    });
  }

  // ---- formatting --------------------------------------------------------------------

  function percent(v) {
    if (v === null || v === undefined) {
      return '–';
    }
    var p = v * 100;
    return (p !== 0 && p < 1 ? p.toFixed(2) : p.toFixed(1)) + '%';
  }

  function micros(v) {
    if (v === null || v === undefined) {
      return '–';
    }
    if (v >= 1000) {
      return (v / 1000).toFixed(2) + ' ms';
    }
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' µs';
  }

  function perSecond(v) {
    return v === null || v === undefined ? '–' : v.toFixed(1) + '/s';
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString();
  }

  function when(rfc3339) {
    if (!rfc3339) {
      return '–';
    }
    var d = new Date(rfc3339);
    return isNaN(d.getTime()) ? rfc3339 : d.toLocaleString();
  }

  function short(hash) {
    return hash ? hash.slice(0, 16) + '…' : '–';
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  // ---- the admin API -----------------------------------------------------------------

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  // A function that calls the admin API with the token; a 401 signs out.
  function client(token, refused) {
    return async function call(method, path, body) {
      var headers = {};
      if (token) {
        headers.Authorization = 'Bearer ' + token;
      }
      var init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      var response;
      try {
        response = await fetch(path, init);
      } catch (e) {
        throw new ApiError(0, 'cannot reach the server (' + e.message + ')');
      }
      var text = await response.text();
      var json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch (e) {
        json = null;
      }
      if (response.status === 401) {
        refused();
        throw new ApiError(401, 'the token was refused');
      }
      if (!response.ok) {
        throw new ApiError(response.status, (json && json.message) || text || String(response.status));
      }
      return json;
    };
  }

  // ---- rollout flags -----------------------------------------------------------------

  function effective(feature) {
    return feature && feature.enabled ? feature.rollout_percentage : 0;
  }

  // Who moved when `name` went from `before` to `after`: buckets are stable, so the users
  // between the two percentages, and only they, changed sides. Null when nobody moved.
  function moved(name, before, after, canaryMode) {
    var a = effective(before);
    var b = effective(after);
    if (a === b) {
      return null;
    }
    var sides = FEATURES[name] || { in: 'the rollout', out: 'outside the rollout' };
    var low = Math.min(a, b);
    var high = Math.max(a, b) - 1;
    var buckets = low === high ? 'bucket ' + low : 'buckets ' + low + '–' + high;
    var text = (b > a ? 'Raising ' : 'Lowering ') + name + ' from ' + a + '% to ' + b + '% moved ' +
      (high - low + 1) + '% of users (' + buckets + ') ' +
      (b > a ? 'onto ' + sides.in : 'back to ' + sides.out) + '.';
    if (name === 'policy_canary' && canaryMode !== 'route') {
      text += ' In shadow mode nobody is routed by it.';
    }
    return text;
  }

  function where(name, feature, canaryMode) {
    var sides = FEATURES[name];
    var p = effective(feature);
    if (!sides) {
      return p + '% of users in the rollout';
    }
    if (name === 'policy_canary' && canaryMode !== 'route') {
      return 'Shadow mode: every decision is also evaluated on the candidate; the percentage routes nobody.';
    }
    return p + '% of users on ' + sides.in + ', ' + (100 - p) + '% on ' + sides.out + '.';
  }

  function featuresPanel(api, announce) {
    var rows = {};
    var current = null;
    var canaryMode = null;
    var tbody = el('tbody');
    var formula = el('code', { id: 'bucketing-formula' });
    var moves = el('ol', { id: 'moves', class: 'moves', 'aria-label': 'Changes made from this console' });
    var rollbackAll = el('button', {
      type: 'button', id: 'rollback-all', class: 'danger',
      'aria-controls': 'rollback-all-confirm', 'aria-expanded': 'false',
    }, 'Roll back every feature…');
    var yes = el('button', { type: 'button', id: 'rollback-all-yes', class: 'danger' }, 'Roll back every feature');
    var no = el('button', { type: 'button', id: 'rollback-all-no' }, 'Cancel');
    var confirmBox = el('div', {
      id: 'rollback-all-confirm', class: 'confirm', role: 'alertdialog',
      'aria-labelledby': 'rollback-all-question', 'aria-describedby': 'rollback-all-effect', hidden: true,
    },
    el('p', { id: 'rollback-all-question', class: 'confirm-title', text: 'Roll back every feature to 0%?' }),
    el('p', {
      id: 'rollback-all-effect',
      text: 'From the next request every user goes to the native path, no decision is cached and nobody is routed to the candidate bundle.',
    }),
    el('div', { class: 'actions' }, yes, no));

    var node = el('section', { id: 'features', class: 'panel', 'aria-labelledby': 'features-title' },
      el('h2', { id: 'features-title', text: 'Rollout flags' }),
      el('p', { id: 'bucketing-rule', class: 'rule' },
        'A user is in a feature\u2019s rollout when the feature is enabled and the user\u2019s bucket, ' +
        'XXH3-64 (seed 0) of \u201c<feature>:<user key>\u201d modulo 100, is below its percentage, ' +
        'so buckets are stable: raising a percentage only moves users in, lowering it only moves them out. ',
        el('span', { class: 'muted' }, 'Server: '), formula),
      el('table', { id: 'features-table', class: 'data' },
        el('caption', { class: 'sr-only', text: 'Rollout flags, their state and percentage' }),
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col', text: 'Feature' }),
          el('th', { scope: 'col', text: 'State' }),
          el('th', { scope: 'col', text: 'Rollout' }),
          el('th', { scope: 'col', text: 'Who is where' }),
          el('th', { scope: 'col', text: 'Change' }))),
        tbody),
      el('div', { class: 'rollback-all' }, rollbackAll, confirmBox),
      el('h3', { text: 'Changes from this console' }),
      el('p', { class: 'muted', text: 'A change applies to the next request.' }),
      moves);

    function row(name) {
      var input = el('input', {
        type: 'number', id: 'pct-' + name, name: 'percentage', min: 0, max: 100, step: 1,
        inputmode: 'numeric', required: true, class: 'pct-input',
      });
      // Typed or cleared: refreshes leave it alone until it is applied.
      ['input', 'change'].forEach(function (type) {
        input.addEventListener(type, function () {
          input.dataset.dirty = 'true';
          input.removeAttribute('aria-invalid');
        });
      });
      var form = el('form', { class: 'pct-form', 'data-feature': name, novalidate: true },
        el('label', { for: 'pct-' + name }, 'Percentage of ', el('span', { class: 'name', text: name })),
        input,
        el('button', { type: 'submit', id: 'apply-' + name }, 'Apply', el('span', { class: 'sr-only', text: ' to ' + name })));
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        var value = Number(input.value);
        if (input.value.trim() === '' || !Number.isInteger(value) || value < 0 || value > 100) {
          input.setAttribute('aria-invalid', 'true');
          announce('The percentage of ' + name + ' must be a whole number from 0 to 100.', true);
          input.focus();
          return;
        }
        change(name, '/admin/rollout/update', { feature: name, percentage: value }, input);
      });
      var rollback = el('button', { type: 'button', id: 'rollback-' + name, class: 'danger' },
        'Roll back', el('span', { class: 'sr-only', text: ' ' + name }));
      rollback.addEventListener('click', function () {
        change(name, '/admin/rollout/rollback', { feature: name }, null);
      });
      var r = {
        tr: el('tr', { 'data-feature': name }),
        state: el('td', { class: 'state' }),
        pct: el('td', { class: 'pct', id: 'current-' + name }),
        bar: el('span', { class: 'bar-fill' }),
        where: el('td', { class: 'where' }),
        input: input,
      };
      r.tr.append(
        el('th', { scope: 'row' }, el('code', { text: name })),
        r.state,
        r.pct,
        r.where,
        el('td', { class: 'change' }, form, rollback));
      tbody.append(r.tr);
      rows[name] = r;
      return r;
    }

    function render(name, feature) {
      var r = rows[name] || row(name);
      clear(r.state);
      r.state.append(el('span', { class: feature.enabled ? 'on' : 'off', text: feature.enabled ? 'enabled' : 'disabled' }));
      if (name === 'wasm_engine') {
        r.state.append(el('br'), el('small', { text: 'fallback on error: ' + (feature.fallback_on_error ? 'on' : 'off') }));
      }
      clear(r.pct);
      var bar = el('span', { class: 'bar', 'aria-hidden': 'true' }, r.bar);
      r.bar.style.width = effective(feature) + '%';
      r.pct.append(el('span', { class: 'pct-value', text: feature.rollout_percentage + '%' }), bar);
      r.where.textContent = where(name, feature, canaryMode);
      // Never overwrite what someone is typing.
      if (document.activeElement !== r.input && r.input.dataset.dirty !== 'true') {
        r.input.value = String(feature.rollout_percentage);
      }
    }

    function update(body) {
      canaryMode = body.policy_canary_mode;
      formula.textContent = body.bucketing;
      Object.keys(body.features).sort().forEach(function (name) {
        render(name, body.features[name]);
      });
      current = body.features;
    }

    // Lists who moved between `before` and `after` (every feature: rollback-all moves many).
    function record(before, after) {
      var lines = [];
      Object.keys(after).sort().forEach(function (name) {
        var line = moved(name, before && before[name], after[name], canaryMode);
        if (line) {
          lines.push(line);
        }
      });
      if (!lines.length) {
        lines.push('Nobody moved: every percentage stayed where it was.');
      }
      lines.slice().reverse().forEach(function (line) {
        moves.prepend(el('li', {}, el('time', { text: clock(Date.now()) }), ' ', line));
      });
      return lines;
    }

    async function change(name, path, body, input) {
      var before = current;
      try {
        var after = await api('POST', path, body);
        if (input) {
          delete input.dataset.dirty;
        }
        Object.keys(after.features).forEach(function (n) {
          if (rows[n]) {
            delete rows[n].input.dataset.dirty;
          }
        });
        var lines = record(before, after.features);
        update(after);
        announce(lines.join(' '), false);
      } catch (e) {
        if (e.status !== 401) {
          announce('Cannot change ' + name + ': ' + e.message, true);
        }
      }
    }

    function closeConfirm() {
      confirmBox.hidden = true;
      rollbackAll.setAttribute('aria-expanded', 'false');
      rollbackAll.focus();
    }

    rollbackAll.addEventListener('click', function () {
      confirmBox.hidden = false;
      rollbackAll.setAttribute('aria-expanded', 'true');
      // The safe choice has the focus; the other is one Shift+Tab away.
      no.focus();
    });
    no.addEventListener('click', closeConfirm);
    confirmBox.addEventListener('keydown', function (event) {
      if (event.key === 'Escape') {
        event.preventDefault();
        closeConfirm();
      }
    });
    yes.addEventListener('click', async function () {
      yes.disabled = true;
      try {
        await change('every feature', '/admin/rollout/rollback-all', undefined, null);
      } finally {
        yes.disabled = false;
        closeConfirm();
      }
    });

    return { node: node, update: update };
  }

  // ---- the A/B comparison ------------------------------------------------------------

  function latencySeries(path) {
    return ['p50', 'p95', 'p99'].map(function (q) {
      return {
        label: path + ' ' + q,
        color: COLORS[path],
        dash: DASHES[q],
        get: function (p) { return p[path].latency_us[q]; },
      };
    });
  }

  function perPath(field) {
    return ['wasm', 'native'].map(function (path) {
      return { label: path, color: COLORS[path], get: function (p) { return p[path][field]; } };
    });
  }

  var CHARTS = [
    { id: 'latency-wasm', title: 'Latency, wasm path', kind: 'latency', series: latencySeries('wasm') },
    { id: 'latency-native', title: 'Latency, native path', kind: 'latency', series: latencySeries('native') },
    { id: 'requests', title: 'Request rate', kind: 'rate', series: perPath('requests_per_s') },
    { id: 'errors', title: 'Error rate', kind: 'share', series: perPath('error_rate') },
    { id: 'fallbacks', title: 'Fallback rate', kind: 'share', series: perPath('fallback_rate') },
    {
      id: 'cache', title: 'Cache hit rate', kind: 'share',
      series: perPath('cache_hit_rate').concat([{
        label: 'decision cache', color: COLORS.cache, dash: [7, 4],
        get: function (p) { return p.cache.hit_rate; },
      }]),
    },
  ];

  var FORMATS = { latency: micros, rate: perSecond, share: percent };

  function axisValue(kind, v) {
    if (kind === 'share') {
      return +(v * 100).toPrecision(3) + '%';
    }
    if (kind === 'latency') {
      return v >= 1000 ? +(v / 1000).toPrecision(3) + ' ms' : +v.toPrecision(3) + ' µs';
    }
    return String(+v.toPrecision(3));
  }

  function comparisonPanel() {
    var shared = { latencyMax: 0 };
    var grid = el('div', { class: 'charts' });
    var summary = el('p', { id: 'series-summary', class: 'muted' }, 'Waiting for the first interval…');
    var charts = CHARTS.map(function (def) {
      var caption = el('figcaption', { id: 'caption-' + def.id, text: def.title });
      var plot = el('div', { class: 'plot', role: 'img', 'aria-labelledby': 'caption-' + def.id, 'aria-describedby': 'latest-' + def.id });
      var latest = el('p', { class: 'chart-latest', id: 'latest-' + def.id, text: 'No data yet.' });
      var figure = el('figure', { class: 'chart', id: 'chart-' + def.id, 'data-points': '0' }, caption, plot, latest);
      grid.append(figure);
      return { def: def, figure: figure, plot: plot, latest: latest, u: null, width: 0 };
    });
    var cells = {};
    var measures = [
      ['requests_per_s', 'Request rate', perSecond],
      ['requests', 'Decisions in the interval', String],
      ['error_rate', 'Error rate', percent],
      ['fallback_rate', 'Fallback rate', percent],
      ['cache_hit_rate', 'Cache hit rate', percent],
      ['p50', 'Latency p50', micros],
      ['p95', 'Latency p95', micros],
      ['p99', 'Latency p99', micros],
    ];
    var body = el('tbody');
    measures.forEach(function (m) {
      var tr = el('tr', {}, el('th', { scope: 'row', text: m[1] }));
      ['wasm', 'native'].forEach(function (path) {
        var td = el('td', { id: 'value-' + path + '-' + m[0], text: '–' });
        cells[path + '-' + m[0]] = td;
        tr.append(td);
      });
      body.append(tr);
    });
    var cacheLine = el('p', { id: 'value-cache' }, 'Decision cache: –');
    var endedAt = el('span', { id: 'latest-when', text: '–' });
    var table = el('table', { id: 'latest-values', class: 'data latest' },
      el('caption', {}, 'Latest interval, ended ', endedAt),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', text: 'Measure' }),
        el('th', { scope: 'col', text: 'wasm' }),
        el('th', { scope: 'col', text: 'native' }))),
      body);
    var node = el('section', { id: 'comparison', class: 'panel', 'aria-labelledby': 'comparison-title' },
      el('h2', { id: 'comparison-title', text: 'Live A/B comparison' }),
      el('p', { class: 'rule' },
        'Per implementation, from the time series the server samples (',
        el('code', { text: 'GET /admin/timeseries' }),
        '): decision latency (cache hits included), request rate, error and fallback rates (a fallback counts on the path that failed) and cache hit rate.'),
      summary, grid, table, cacheLine);

    function yRange(def) {
      return function (u, min, max) {
        if (def.kind === 'latency') {
          return [0, Math.max(shared.latencyMax, 1) * 1.1];
        }
        var top = max === null || max === undefined || !isFinite(max) ? 0 : max;
        return [0, Math.max(top * 1.1, def.kind === 'share' ? 0.01 : 1)];
      };
    }

    function make(chart, data) {
      var def = chart.def;
      var format = FORMATS[def.kind];
      var width = Math.max(chart.plot.clientWidth, 240);
      chart.width = width;
      chart.u = new uPlot({
        width: width,
        height: CHART_HEIGHT,
        cursor: { drag: { x: false, y: false } },
        legend: { live: true },
        scales: { x: { time: true }, y: { range: yRange(def) } },
        axes: [
          { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' } },
          {
            stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' }, size: 70,
            values: function (u, splits) { return splits.map(function (v) { return axisValue(def.kind, v); }); },
          },
        ],
        series: [{ label: 'time', value: function (u, v) { return v === null || v === undefined ? '–' : clock(v * 1000); } }]
          .concat(def.series.map(function (s) {
            return {
              label: s.label,
              stroke: s.color,
              width: 2,
              dash: s.dash || undefined,
              value: function (u, v) { return format(v); },
            };
          })),
      }, data, chart.plot);
    }

    // Charts follow their column's width (deferred a frame, so a resize never loops).
    var resize = new ResizeObserver(function () {
      window.requestAnimationFrame(function () {
        charts.forEach(function (chart) {
          var width = Math.max(chart.plot.clientWidth, 240);
          if (chart.u && Math.abs(width - chart.width) > 1) {
            chart.width = width;
            chart.u.setSize({ width: width, height: CHART_HEIGHT });
          }
        });
      });
    });
    resize.observe(grid);

    function describe(def, last) {
      if (!last) {
        return 'No data yet.';
      }
      var format = FORMATS[def.kind];
      return 'Latest: ' + def.series.map(function (s) { return s.label + ' ' + format(s.get(last)); }).join(', ') + '.';
    }

    function update(series) {
      var points = series.points;
      var xs = points.map(function (p) { return p.t / 1000; });
      shared.latencyMax = 0;
      points.forEach(function (p) {
        ['wasm', 'native'].forEach(function (path) {
          var v = p[path].latency_us.p99;
          if (v !== null && v > shared.latencyMax) {
            shared.latencyMax = v;
          }
        });
      });
      var last = points.length ? points[points.length - 1] : null;
      charts.forEach(function (chart) {
        var data = [xs].concat(chart.def.series.map(function (s) { return points.map(s.get); }));
        if (!chart.u) {
          make(chart, data);
        } else {
          chart.u.setData(data);
        }
        chart.figure.dataset.points = String(points.length);
        chart.latest.textContent = describe(chart.def, last);
      });
      if (last) {
        endedAt.textContent = clock(last.t);
        ['wasm', 'native'].forEach(function (path) {
          measures.forEach(function (m) {
            var v = m[0].charAt(0) === 'p' ? last[path].latency_us[m[0]] : last[path][m[0]];
            cells[path + '-' + m[0]].textContent = m[2](v);
          });
        });
        cacheLine.textContent = 'Decision cache: hit rate ' + percent(last.cache.hit_rate) + ' (' +
          last.cache.hits + ' hits, ' + last.cache.misses + ' misses in the interval), ' +
          last.cache.entries + ' decisions cached.';
        var minutes = points.length > 1 ? Math.round((last.t - points[0].t) / 60000) : 0;
        summary.textContent = points.length + ' points, one every ' + (series.interval / 1000) +
          ' s (the server keeps ' + series.capacity + '); ' +
          (minutes ? 'the last ' + minutes + ' min.' : 'since ' + clock(points[0].t) + '.');
      }
    }

    return { node: node, update: update };
  }

  // Keeps the points fetched so far and asks only for newer ones.
  function seriesStore(api) {
    var points = [];
    return async function fetchSeries() {
      var since = points.length ? points[points.length - 1].t : null;
      var body = await api('GET', '/admin/timeseries' + (since === null ? '' : '?since=' + since));
      points = points.concat(body.points);
      if (points.length > body.capacity) {
        points = points.slice(points.length - body.capacity);
      }
      return { points: points, interval: body.interval_ms, capacity: body.capacity };
    };
  }

  // ---- the policy canary -------------------------------------------------------------

  function answerText(side) {
    if (side.error) {
      return 'error: ' + side.error;
    }
    return Object.prototype.hasOwnProperty.call(side, 'result') ? pretty(side.result) : 'undefined';
  }

  // A bundle id (`<revision>@<content hash>`), its hash shortened; whole in the tooltip.
  function bundleLabel(id) {
    var at = id.lastIndexOf('@');
    var text = at > 0 && id.length - at > 20 ? id.slice(0, at + 20) + '…' : id;
    return el('small', { title: id, text: text });
  }

  function canaryPanel() {
    var dl = el('dl', { class: 'facts', id: 'canary-facts' });
    var list = el('ol', { id: 'disagreements', class: 'disagreements' });
    var note = el('p', { id: 'canary-mask', class: 'muted' });
    var shownKey = null;
    var opened = {};
    var paused = false;
    var latest = null;
    // Under load the list changes at every refresh: pausing it keeps what is being read.
    var pause = el('button', { type: 'button', id: 'disagreements-pause', 'aria-pressed': 'false' }, 'Pause the list');
    pause.addEventListener('click', function () {
      paused = !paused;
      pause.setAttribute('aria-pressed', String(paused));
      pause.textContent = paused ? 'Resume the list' : 'Pause the list';
      if (!paused && latest) {
        show(latest);
      }
    });
    var node = el('section', { id: 'canary', class: 'panel', 'aria-labelledby': 'canary-title' },
      el('h2', { id: 'canary-title', text: 'Policy canary' }),
      dl,
      el('h3', { text: 'Last disagreements' }),
      note,
      el('p', {}, pause),
      list);

    // One disagreement: the newest few open, the others one keypress away (a <details>).
    function disagreement(d, i) {
      var masked = d.erased && d.erased.length ? 'Masked: ' + d.erased.join(', ') : 'Masked: nothing in this input';
      var key = d.timestamp + ' ' + d.entrypoint + ' ' + d.candidate.bundle;
      var open = Object.prototype.hasOwnProperty.call(opened, key) ? opened[key] : i < OPEN_DISAGREEMENTS;
      var details = el('details', { class: 'disagreement', open: open },
        el('summary', {}, el('time', { text: when(d.timestamp) }), ' ', el('code', { text: d.entrypoint })),
        el('article', { 'aria-label': 'Disagreement on ' + d.entrypoint + ' at ' + when(d.timestamp) },
          el('div', { class: 'sides' },
            el('div', {},
              el('h4', { text: 'Input (masked as in the decision log)' }),
              el('pre', { class: 'json input', tabindex: 0, 'aria-label': 'Input', text: d.input === null ? 'not kept' : pretty(d.input) }),
              el('p', { class: 'muted erased', text: masked }),
              d.omitted && d.omitted.length ? el('p', { class: 'muted', text: 'Too large to keep: ' + d.omitted.join(', ') }) : null),
            el('div', {},
              el('h4', {}, 'Active ', bundleLabel(d.active.bundle)),
              el('pre', { class: 'json active', tabindex: 0, 'aria-label': 'Active result', text: answerText(d.active) })),
            el('div', {},
              el('h4', {}, 'Candidate ', bundleLabel(d.candidate.bundle)),
              el('pre', { class: 'json candidate', tabindex: 0, 'aria-label': 'Candidate result', text: answerText(d.candidate) })))));
      // What someone opened or closed stays so across refreshes.
      // (The toggle that opening at creation fires is not someone's choice.)
      details.addEventListener('toggle', function () {
        if (details.open !== open || Object.prototype.hasOwnProperty.call(opened, key)) {
          opened[key] = details.open;
        }
      });
      return el('li', {}, details);
    }

    function update(body) {
      var share;
      if (!body.candidate) {
        share = 'No candidate bundle (sark serve --candidate-bundle): nothing is compared.';
      } else if (body.mode === 'route') {
        share = body.routed_percentage + '% of users are served by the candidate' +
          (body.routed_percentage ? ' (policy_canary buckets 0–' + (body.routed_percentage - 1) + ')' : '') + '.';
      } else {
        share = body.shadowed_percentage + '% of decisions are also evaluated on the candidate, after the response; responses never change.';
      }
      var rate = body.compared ? ' (' + percent(body.disagreements / body.compared) + ' of ' + body.compared + ' compared)' : '';
      facts(dl, [
        ['Mode', body.mode, 'canary-mode'],
        ['Candidate', body.candidate ? body.candidate.revision + ' (' + body.candidate.id + ')' : 'none', 'canary-candidate'],
        ['Share', share, 'canary-share'],
        ['Disagreements', String(body.disagreements) + rate, 'canary-disagreements'],
      ]);
      note.textContent = (body.mask.length ? 'Inputs and results are masked as in the decision log (decision_log.mask: ' +
        body.mask.join(', ') + ').' : 'No decision_log.mask is configured: inputs are shown whole.') +
        ' The server keeps the last ' + body.recent_capacity + '; the newest ' + SHOWN_DISAGREEMENTS + ' are shown.';
      latest = body;
      if (!paused) {
        show(body);
      }
    }

    function show(body) {
      var shown = body.recent.slice(0, SHOWN_DISAGREEMENTS);
      var key = JSON.stringify(shown);
      if (key === shownKey) {
        return;
      }
      shownKey = key;
      clear(list);
      if (!shown.length) {
        list.append(el('li', { class: 'muted', text: body.mode === 'route' ? 'Route mode compares nothing: users in the rollout get the candidate\u2019s decisions.' : 'No disagreement yet.' }));
        return;
      }
      var kept = {};
      shown.forEach(function (d) {
        var key = d.timestamp + ' ' + d.entrypoint + ' ' + d.candidate.bundle;
        if (Object.prototype.hasOwnProperty.call(opened, key)) {
          kept[key] = opened[key];
        }
      });
      opened = kept;
      shown.forEach(function (d, i) { list.append(disagreement(d, i)); });
    }

    return { node: node, update: update };
  }

  // ---- bundle and cluster ------------------------------------------------------------

  function bundlePanel() {
    var dl = el('dl', { class: 'facts', id: 'bundle-facts' });
    var reloads = el('tbody');
    var cluster = el('div', { id: 'cluster' });
    var node = el('section', { id: 'bundle', class: 'panel', 'aria-labelledby': 'bundle-title' },
      el('h2', { id: 'bundle-title', text: 'Bundle and cluster' }),
      dl,
      el('h3', { text: 'Last reloads' }),
      el('table', { id: 'reloads', class: 'data' },
        el('caption', { class: 'sr-only', text: 'Activations and refused reloads, newest first' }),
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col', text: 'Time' }),
          el('th', { scope: 'col', text: 'Reason' }),
          el('th', { scope: 'col', text: 'Result' }),
          el('th', { scope: 'col', text: 'Revision' }),
          el('th', { scope: 'col', text: 'Error' }))),
        reloads),
      el('h3', { text: 'Cluster' }),
      cluster);

    function code(text, title) {
      return el('code', { title: title || null, text: text });
    }

    // What was drawn last, so a refresh redraws only what changed.
    var drawn = {};
    function changed(part, value) {
      var key = JSON.stringify(value);
      if (drawn[part] === key) {
        return false;
      }
      drawn[part] = key;
      return true;
    }

    function update(body) {
      if (changed('facts', [body.name, body.origin, body.active, body.candidate, body.verification_key_id, body.reload])) {
        showFacts(body);
      }
      if (changed('reloads', body.reloads)) {
        showReloads(body.reloads);
      }
      if (changed('cluster', body.cluster)) {
        showCluster(body.cluster);
      }
    }

    function showFacts(body) {
      var a = body.active;
      var c = body.candidate;
      facts(dl, [
        ['Bundle', body.name + ' from ' + body.origin],
        ['Revision', a.revision, 'bundle-revision'],
        ['Content hash', code(a.content_hash), 'bundle-hash'],
        ['Signing key id', a.signing_key_id ? code(a.signing_key_id) : 'unsigned', 'bundle-key'],
        ['Verification key id', body.verification_key_id ? code(body.verification_key_id) : 'none: signatures are not required', 'bundle-verification'],
        ['Candidate', c ? [c.revision + ', content hash ', code(short(c.content_hash), c.content_hash), c.signing_key_id ? ', signed by ' + c.signing_key_id : ', unsigned'] : 'none', 'bundle-candidate'],
        ['Activated', when(body.reload.last_activation)],
        ['Reloads', body.reload.attempts + ' attempted, ' + body.reload.successes + ' succeeded', 'bundle-reloads'],
        ['Last reload error', body.reload.last_error || 'none', 'bundle-error'],
      ]);
    }

    function showReloads(list) {
      clear(reloads);
      list.slice().reverse().forEach(function (r) {
        reloads.append(el('tr', { class: r.result },
          el('td', {}, el('time', { text: when(r.time) })),
          el('td', { text: r.reason }),
          el('td', { class: 'result', text: r.result }),
          el('td', { text: r.revision || '–' }),
          el('td', { class: 'reload-error', text: r.error || '' })));
      });
    }

    function showCluster(s) {
      clear(cluster);
      if (!s) {
        cluster.append(el('p', { id: 'cluster-state', text: 'Not clustered: the rollout state and the decision cache belong to this instance.' }));
        return;
      }
      var dlc = el('dl', { class: 'facts' });
      facts(dlc, [
        ['Redis', code(s.redis)],
        ['Connection', s.connected ? 'connected' : 'disconnected (degraded: serving with the last known rollout state)', 'cluster-state'],
        ['Last sync', s.last_sync_ms_ago === null ? 'never' : (s.last_sync_ms_ago / 1000).toFixed(1) + ' s ago'],
        ['Rollout changes applied', String(s.updates_applied)],
        ['Last error', s.last_error || 'none'],
      ]);
      cluster.append(dlc);
    }

    return { node: node, update: update };
  }

  // ---- the console -------------------------------------------------------------------

  function start(options) {
    var root = options.root;
    clear(root);
    var stopped = false;
    var api = client(options.token, function () {
      stopped = true;
      options.signOut();
    });
    var status = el('p', { id: 'app-status', class: 'status', role: 'status', 'aria-live': 'polite' });
    var updated = el('p', { id: 'updated', class: 'muted updated' });
    function announce(message, isError) {
      status.textContent = message;
      status.className = isError ? 'status error' : 'status';
    }
    var sections = [['features', 'Rollout flags'], ['comparison', 'A/B comparison'], ['canary', 'Policy canary'], ['bundle', 'Bundle and cluster']];
    var nav = el('nav', { 'aria-label': 'Console sections' },
      el('ul', {}, sections.map(function (s) { return el('li', {}, el('a', { href: '#' + s[0], text: s[1] })); })));
    var features = featuresPanel(api, announce);
    var comparison = comparisonPanel();
    var canary = canaryPanel();
    var bundle = bundlePanel();
    root.append(nav, status, updated, features.node, comparison.node, canary.node, bundle.node);
    var fetchSeries = seriesStore(api);
    var refreshMs = REFRESH_MAX_MS;

    async function refresh() {
      var results = await Promise.allSettled([
        api('GET', '/admin/features').then(features.update),
        fetchSeries().then(function (series) {
          refreshMs = Math.min(REFRESH_MAX_MS, Math.max(REFRESH_MIN_MS, series.interval));
          comparison.update(series);
        }),
        api('GET', '/admin/canary').then(canary.update),
        api('GET', '/admin/bundle').then(bundle.update),
      ]);
      var failed = results.filter(function (r) { return r.status === 'rejected'; });
      if (stopped) {
        return;
      }
      if (failed.length) {
        updated.textContent = 'Refresh failed at ' + clock(Date.now()) + ': ' +
          failed.map(function (r) { return r.reason && r.reason.message ? r.reason.message : String(r.reason); }).join('; ');
        updated.className = 'error updated';
      } else {
        updated.textContent = 'Updated at ' + clock(Date.now()) + ', every ' + (refreshMs / 1000) + ' s.';
        updated.className = 'muted updated';
      }
    }

    async function loop() {
      try {
        await refresh();
      } catch (e) {
        updated.textContent = 'Refresh failed: ' + (e && e.message ? e.message : String(e));
      }
      if (!stopped) {
        window.setTimeout(loop, refreshMs);
      }
    }
    loop();
  }

  window.SarkConsole = { start: start };
})();
