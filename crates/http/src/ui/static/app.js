// The dashboard's only script. Pages work without it; it adds confirmation of destructive
// forms and the live view of a run that has not finished. Model output and tool results are
// untrusted: they are only ever inserted as text (textContent / text nodes), never as HTML.
'use strict';

(function () {
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });

  var live = document.getElementById('live');
  if (!live || !window.EventSource) {
    return;
  }
  var runId = live.dataset.runId;
  // Steps already rendered by the server: their replayed events would only repeat them.
  var done = new Set((live.dataset.doneSteps || '').split(',').filter(Boolean));
  var log = document.getElementById('live-log');
  var statusLine = document.getElementById('live-status');
  var runStatus = document.getElementById('run-status');
  var texts = new Map();
  var MAX_SHOWN = 2000;

  function data(event) {
    try {
      return JSON.parse(event.data);
    } catch (e) {
      return null;
    }
  }

  function skip(d) {
    return !d || done.has(String(d.step));
  }

  function short(value) {
    var text = typeof value === 'string' ? value : JSON.stringify(value);
    if (text === undefined) {
      return '';
    }
    return text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN) + '…' : text;
  }

  // The <pre> holding the streamed text of one model step.
  function textOf(step) {
    var pre = texts.get(step);
    if (!pre) {
      var box = document.createElement('div');
      box.className = 'live-step';
      var head = document.createElement('div');
      head.className = 'step-head';
      head.textContent = '#' + step + ' llm';
      pre = document.createElement('pre');
      pre.className = 'text';
      box.appendChild(head);
      box.appendChild(pre);
      log.appendChild(box);
      texts.set(step, pre);
    }
    return pre;
  }

  function line(text, className) {
    var p = document.createElement('p');
    p.className = className;
    p.textContent = text;
    log.appendChild(p);
  }

  function setStatus(text) {
    statusLine.textContent = 'Following the run live: ' + text + '…';
    if (runStatus) {
      runStatus.textContent = text;
      runStatus.className = 'status status-' + text;
    }
  }

  var source = new EventSource('/ui/runs/' + encodeURIComponent(runId) + '/events');

  source.addEventListener('run.started', function () {
    setStatus('running');
  });
  source.addEventListener('message.delta', function (event) {
    var d = data(event);
    if (skip(d) || typeof d.text !== 'string') {
      return;
    }
    textOf(d.step).appendChild(document.createTextNode(d.text));
  });
  // The model call is being retried: what it streamed so far is void.
  source.addEventListener('message.reset', function (event) {
    var d = data(event);
    if (skip(d)) {
      return;
    }
    textOf(d.step).textContent = '';
  });
  source.addEventListener('tool.started', function (event) {
    var d = data(event);
    if (skip(d)) {
      return;
    }
    line('#' + d.step + ' → ' + d.name + ' ' + short(d.arguments), 'live-tool');
  });
  source.addEventListener('tool.completed', function (event) {
    var d = data(event);
    if (skip(d)) {
      return;
    }
    if (d.error) {
      line('#' + d.step + ' ✗ ' + d.name + ': ' + short(d.error.message), 'live-tool live-error');
    } else {
      line('#' + d.step + ' ✓ ' + d.name + ' → ' + short(d.result), 'live-tool');
    }
  });
  // The run ended: the server-rendered page shows the final timeline.
  ['run.completed', 'run.failed', 'run.cancelled'].forEach(function (name) {
    source.addEventListener(name, function () {
      source.close();
      window.location.reload();
    });
  });
  source.addEventListener('error', function () {
    if (source.readyState === EventSource.CLOSED) {
      statusLine.textContent = 'Live updates stopped. Refresh the page to see the current state.';
    }
  });
  setStatus(runStatus ? runStatus.textContent.trim() : 'queued');
})();
