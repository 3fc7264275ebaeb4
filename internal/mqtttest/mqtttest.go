// Package mqtttest runs the independent MQTT broker the tests talk to (Debian's mosquitto, one per test
// on 127.0.0.1) and an independent paho subscriber that records what arrives. Test code only.
package mqtttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sightline/internal/testenv"
)

// mosquittoPath finds Debian's broker, which lives in /usr/sbin (not on every user's PATH).
func mosquittoPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return testenv.LookPath(t, "/usr/sbin/mosquitto", "mosquitto")
	}
	return testenv.LookPath(t, "mosquitto", "mosquitto")
}

// Broker is a real mosquitto on 127.0.0.1, one per test, that can be killed and started again on the
// same port.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

// StartBroker starts mosquitto with extra config lines (allow_anonymous, password_file, ...).
func StartBroker(t testing.TB, extra ...string) *Broker {
	t.Helper()
	b := &Broker{t: t, bin: mosquittoPath(t), port: FreePort(t)}
	lines := []string{fmt.Sprintf("listener %d 127.0.0.1", b.port), "persistence false", "log_dest stderr",
		"log_type error", "log_type warning"}
	if os.Geteuid() == 0 {
		lines = append(lines, "user root") // as root mosquitto would switch to its own user, who cannot read t.TempDir()
	}
	lines = append(lines, extra...)
	b.conf = filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(b.Kill)
	return b
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Port is the broker's TCP port on 127.0.0.1.
func (b *Broker) Port() int { return b.port }

// URL is the broker's tcp:// URL.
func (b *Broker) URL() string { return "tcp://127.0.0.1:" + strconv.Itoa(b.port) }

// Start runs the broker and waits until it accepts connections.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = &syncWriter{mu: &b.mu, w: &b.log}, &syncWriter{mu: &b.mu, w: &b.log}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		b.t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b.t.Fatalf("mosquitto exited: %s", b.Output())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto does not listen on %d: %s", b.port, b.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill ends the broker with SIGKILL (no goodbye to its clients) and waits for it.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Output is what the broker logged.
func (b *Broker) Output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Message is one message a test subscriber got.
type Message struct {
	Topic    string
	Payload  string
	Retained bool
}

// Subscriber is an independent paho client subscribed to topics, recording what arrives.
type Subscriber struct {
	c  paho.Client
	mu sync.Mutex
	ms []Message
}

// Subscribe connects a paho client to brokerURL and records what arrives on topics.
func Subscribe(t testing.TB, brokerURL, user, pass string, topics ...string) *Subscriber {
	t.Helper()
	s := &Subscriber{}
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID("test-sub-" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	s.c = paho.NewClient(opts)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	filters := map[string]byte{}
	for _, tp := range topics {
		filters[tp] = 1
	}
	if tok := s.c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.ms = append(s.ms, Message{m.Topic(), string(m.Payload()), m.Retained()})
		s.mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(s.Close)
	return s
}

// Close disconnects the subscriber.
func (s *Subscriber) Close() { s.c.Disconnect(100) }

// Messages returns what arrived on topics matching the suffix.
func (s *Subscriber) Messages(suffix string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.ms {
		if strings.HasSuffix(m.Topic, suffix) {
			out = append(out, m)
		}
	}
	return out
}
