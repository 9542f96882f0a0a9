// The plain Parley page: log in, pick a room, send and see messages. Text is rendered as text.
'use strict';
const $ = (id) => document.getElementById(id);
let token = null;
let ws = null;
let room = 'general';

async function post(path, body, auth) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = 'Bearer ' + auth;
  const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body ?? {}) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error ? data.error.message : res.statusText);
  return data;
}

function show(m) {
  const li = document.createElement('li');
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = m.from;
  const text = document.createElement('span');
  text.textContent = m.message;
  const time = document.createElement('time');
  time.className = 'time';
  time.dateTime = m.sent;
  time.textContent = new Date(m.sent).toLocaleTimeString();
  li.append(from, text, time);
  $('messages').append(li);
  $('messages').scrollTop = $('messages').scrollHeight;
}

function connect(otp) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  ws = new WebSocket(`${proto}//${location.host}/ws?otp=${encodeURIComponent(otp)}`);
  $('status').textContent = 'connecting…';
  ws.onopen = () => { $('status').textContent = 'online'; };
  ws.onmessage = (ev) => {
    const { type, payload } = JSON.parse(ev.data);
    if (type === 'new_message' && payload.room === room) show(payload);
    else if (type === 'room_changed') { room = payload.name; $('messages').replaceChildren(); ws.send(JSON.stringify({ type: 'history', payload: { room } })); }
    else if (type === 'history') payload.messages.slice().reverse().forEach(show);
    else if (type === 'joined' && payload.room === room) ws.send(JSON.stringify({ type: 'history', payload: { room } }));
    else if (type === 'error') $('status').textContent = payload.message;
  };
  ws.onclose = (ev) => {
    $('status').textContent = `disconnected (${ev.code}); reconnecting…`;
    if (ev.code !== 4500) setTimeout(async () => {
      try { connect((await post('/ticket', {}, token)).otp); } catch (e) { $('status').textContent = 'offline: ' + e.message; }
    }, 1000 + Math.random() * 2000);
  };
}

async function enter(register) {
  $('login-error').textContent = '';
  const body = { username: $('username').value, password: $('password').value };
  try {
    if (register) await post('/register', body);
    const res = await post('/login', body);
    token = res.token;
    $('login').hidden = true;
    $('chat').hidden = false;
    connect(res.otp);
    $('text').focus();
  } catch (e) {
    $('login-error').textContent = e.message;
  }
}

$('login').addEventListener('submit', (e) => { e.preventDefault(); enter(false); });
$('register-btn').addEventListener('click', () => enter(true));
$('room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  ws.send(JSON.stringify({ type: 'change_room', payload: { name: $('room').value } }));
});
$('send').addEventListener('submit', (e) => {
  e.preventDefault();
  const message = $('text').value;
  if (!message || !ws || ws.readyState !== 1) return;
  ws.send(JSON.stringify({ type: 'send_message', payload: { message } }));
  $('text').value = '';
});
