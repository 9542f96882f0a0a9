// Go chat peer for the benchmark suite, on gorilla/websocket, built from the seed's design:
// a Manager holding the clients and rooms, a Client per connection with one reader goroutine
// (readPump) and one writer goroutine (writePump) fed by a buffered egress channel, ping/pong
// heartbeat, a read limit, and JSON events {type, payload}.
//
//	{"type":"join","payload":{"room":R}}                     → join R, reply {"type":"joined","payload":{"room":R}}
//	{"type":"send_message","payload":{"room":R,"message":M}} → new_message marshalled once, the same
//	                                                           []byte queued to every member of R
//
// A client whose egress channel is full is dropped (as gorilla's chat example does).
// Connect as in the seed: POST /ticket (Authorization: Bearer <name>) → {"otp":T}, a one-time
// password kept in a retention map for 5 s; GET /ws?otp=T upgrades once per ticket (401 otherwise).
// Listens on 127.0.0.1:PORT (PORT env or first argument; HOST env to change). GET /healthz → 200.
// Prints nothing per message.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// Time allowed to write a message to the peer.
	writeWait = 10 * time.Second
	// Time allowed to read the next pong message from the peer.
	pongWait = 60 * time.Second
	// Send pings to the peer with this period. Must be less than pongWait.
	pingPeriod = (pongWait * 9) / 10
	// Maximum message size allowed from the peer.
	maxMessageSize = 4096
)

// Frames queued per client before it counts as slow and is dropped (EGRESS env; 256 as in gorilla's chat example).
var egressSize = 256

// Clients dropped because their egress was full; reported on stderr at exit when non-zero.
var dropped int64

var upgrader = websocket.Upgrader{
	ReadBufferSize:    1024,
	WriteBufferSize:   1024,
	EnableCompression: false,
	CheckOrigin:       func(r *http.Request) bool { return true },
}

// Event is every frame in both directions.
type Event struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

type JoinPayload struct {
	Room string `json:"room"`
}

type SendMessagePayload struct {
	Room    string `json:"room"`
	Message string `json:"message"`
}

type NewMessagePayload struct {
	Room    string `json:"room"`
	From    string `json:"from"`
	Message string `json:"message"`
	Sent    string `json:"sent"`
}

type outEvent struct {
	Type    string      `json:"type"`
	Payload interface{} `json:"payload"`
}

type EventHandler func(event Event, c *Client) error

// OTP is a one-time password handed out by /ticket.
type OTP struct {
	Name    string
	Created time.Time
}

// RetentionMap holds OTPs until they are used or older than the retention period (the seed's design).
type RetentionMap struct {
	sync.Mutex
	otps map[string]OTP
}

func NewRetentionMap(retention time.Duration) *RetentionMap {
	rm := &RetentionMap{otps: make(map[string]OTP)}
	go func() {
		for range time.Tick(400 * time.Millisecond) {
			rm.Lock()
			for key, otp := range rm.otps {
				if otp.Created.Add(retention).Before(time.Now()) {
					delete(rm.otps, key)
				}
			}
			rm.Unlock()
		}
	}()
	return rm
}

func (rm *RetentionMap) NewOTP(name string) string {
	var b [24]byte
	rand.Read(b[:])
	key := base64.RawURLEncoding.EncodeToString(b[:])
	rm.Lock()
	rm.otps[key] = OTP{Name: name, Created: time.Now()}
	rm.Unlock()
	return key
}

// VerifyOTP consumes the OTP: the name it was minted for, and whether it was valid.
func (rm *RetentionMap) VerifyOTP(key string) (string, bool) {
	rm.Lock()
	defer rm.Unlock()
	otp, ok := rm.otps[key]
	if ok {
		delete(rm.otps, key)
	}
	return otp.Name, ok
}

// Manager holds every client and the rooms; the lock guards clients, rooms and each Client.rooms.
type Manager struct {
	sync.RWMutex
	clients  map[*Client]bool
	rooms    map[string]map[*Client]bool
	handlers map[string]EventHandler
	nextID   uint64
	otps     *RetentionMap
}

func NewManager() *Manager {
	m := &Manager{
		clients:  make(map[*Client]bool),
		rooms:    make(map[string]map[*Client]bool),
		handlers: make(map[string]EventHandler),
		otps:     NewRetentionMap(5 * time.Second),
	}
	m.handlers["join"] = m.handleJoin
	m.handlers["send_message"] = m.handleSendMessage
	return m
}

type Client struct {
	conn    *websocket.Conn
	manager *Manager
	id      string
	// egress serializes writes: only writePump writes to conn.
	egress chan []byte
	rooms  map[string]bool
}

func (m *Manager) ticketHandler(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	name := strings.TrimPrefix(auth, "Bearer ")
	if r.Method != http.MethodPost || name == auth || name == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("content-type", "application/json")
	w.Write([]byte(`{"otp":"` + m.otps.NewOTP(name) + `"}`))
}

func (m *Manager) serveWS(w http.ResponseWriter, r *http.Request) {
	otp := r.URL.Query().Get("otp")
	if otp == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	name, ok := m.otps.VerifyOTP(otp)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	m.Lock()
	m.nextID++
	c := &Client{conn: conn, manager: m, id: name + "#" + strconv.FormatUint(m.nextID, 10), egress: make(chan []byte, egressSize), rooms: make(map[string]bool)}
	m.clients[c] = true
	m.Unlock()
	go c.writePump()
	go c.readPump()
}

// removeClient takes c out of every room and closes its egress (once; true that time); writePump
// then closes the socket.
func (m *Manager) removeClient(c *Client) bool {
	m.Lock()
	defer m.Unlock()
	if !m.clients[c] {
		return false
	}
	delete(m.clients, c)
	for room := range c.rooms {
		if members := m.rooms[room]; members != nil {
			delete(members, c)
			if len(members) == 0 {
				delete(m.rooms, room)
			}
		}
	}
	close(c.egress)
	return true
}

func (m *Manager) routeEvent(ev Event, c *Client) error {
	if h, ok := m.handlers[ev.Type]; ok {
		return h(ev, c)
	}
	return nil
}

func (m *Manager) handleJoin(ev Event, c *Client) error {
	var p JoinPayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.Room == "" {
		return err
	}
	reply, err := json.Marshal(outEvent{Type: "joined", Payload: JoinPayload{Room: p.Room}})
	if err != nil {
		return err
	}
	m.Lock()
	if !m.clients[c] {
		m.Unlock()
		return nil
	}
	members := m.rooms[p.Room]
	if members == nil {
		members = make(map[*Client]bool)
		m.rooms[p.Room] = members
	}
	members[c] = true
	c.rooms[p.Room] = true
	m.Unlock()
	m.send(c, reply)
	return nil
}

func (m *Manager) handleSendMessage(ev Event, c *Client) error {
	var p SendMessagePayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return err
	}
	// Marshal once; every member gets the same bytes.
	data, err := json.Marshal(outEvent{Type: "new_message", Payload: NewMessagePayload{
		Room: p.Room, From: c.id, Message: p.Message, Sent: time.Now().UTC().Format(time.RFC3339Nano),
	}})
	if err != nil {
		return err
	}
	var slow []*Client
	m.RLock()
	if c.rooms[p.Room] {
		for member := range m.rooms[p.Room] {
			select {
			case member.egress <- data:
			default:
				slow = append(slow, member)
			}
		}
	}
	m.RUnlock()
	for _, s := range slow {
		if m.removeClient(s) {
			atomic.AddInt64(&dropped, 1)
		}
	}
	return nil
}

// send queues one frame for c, dropping c if its egress is full.
func (m *Manager) send(c *Client, data []byte) {
	m.RLock()
	ok := true
	if m.clients[c] {
		select {
		case c.egress <- data:
		default:
			ok = false
		}
	}
	m.RUnlock()
	if !ok && m.removeClient(c) {
		atomic.AddInt64(&dropped, 1)
	}
}

func (c *Client) readPump() {
	defer func() {
		c.manager.removeClient(c)
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, payload, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var ev Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return
		}
		c.manager.routeEvent(ev, c)
	}
}

func (c *Client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.egress:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				// The manager closed the channel.
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, message); err != nil {
				c.manager.removeClient(c)
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.manager.removeClient(c)
				return
			}
		}
	}
}

func main() {
	log.SetFlags(0)
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if port == "" {
		port = "3000"
	}
	if n, err := strconv.Atoi(os.Getenv("EGRESS")); err == nil && n > 0 {
		egressSize = n
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	m := NewManager()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", m.serveWS)
	mux.HandleFunc("/ticket", m.ticketHandler)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/plain")
		w.Write([]byte("ok"))
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		if n := atomic.LoadInt64(&dropped); n > 0 {
			log.Printf("go-gorilla peer: dropped %d slow client(s) whose egress (%d frames) was full", n, egressSize)
		}
		os.Exit(0)
	}()
	log.Fatal(http.ListenAndServe(host+":"+port, mux))
}
