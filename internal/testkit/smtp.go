package testkit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPServer is a real SMTP server in the test's process (emersion/go-smtp):
// slotpay's mailer talks SMTP to it over TCP, as to any server, and every
// message it accepts is kept for the test to read. It can refuse the next
// messages, as a server that is down or over quota does.
type SMTPServer struct {
	// Addr is host:port; URL is the SMTP_URL that reaches it.
	Addr string
	URL  string

	mu       sync.Mutex
	messages []Mail
	refuse   int
}

// Mail is one message the server accepted.
type Mail struct {
	From string
	To   []string
	Raw  []byte
	// Header is the parsed header of Raw.
	Header mail.Header
}

// NewSMTPServer starts a server on a loopback port for the length of t.
func NewSMTPServer(t testing.TB) *SMTPServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: smtp listen: %v", err)
	}
	s := &SMTPServer{Addr: l.Addr().String()}
	s.URL = "smtp://" + s.Addr
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{server: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.MaxMessageBytes = 10 << 20
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// RefuseNext makes the server answer the next n messages with a temporary
// failure (451), after reading them.
func (s *SMTPServer) RefuseNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = n
}

// Messages returns a copy of every accepted message, in order of arrival.
func (s *SMTPServer) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.messages...)
}

// To returns the accepted messages addressed to rcpt.
func (s *SMTPServer) To(rcpt string) []Mail {
	var out []Mail
	for _, m := range s.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, rcpt) {
				out = append(out, m)
			}
		}
	}
	return out
}

type smtpSession struct {
	server *SMTPServer
	from   string
	to     []string
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.server.mu.Lock()
	defer s.server.mu.Unlock()
	if s.server.refuse > 0 {
		s.server.refuse--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "testkit: refused on purpose"}
	}
	m := Mail{From: s.from, To: append([]string(nil), s.to...), Raw: raw}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Header = parsed.Header
	}
	s.server.messages = append(s.server.messages, m)
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// Parts returns the leaves of the message by content type (text/plain,
// text/html, text/calendar …), their transfer encoding undone.
func (m Mail) Parts() (map[string][]byte, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var walk func(ctype, encoding string, r io.Reader) error
	walk = func(ctype, encoding string, r io.Reader) error {
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(mt, "multipart/") {
			if strings.EqualFold(encoding, "base64") {
				r = base64.NewDecoder(base64.StdEncoding, r)
			}
			b, err := io.ReadAll(r)
			out[mt] = b
			return err
		}
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			// multipart.Reader undoes quoted-printable itself.
			if err := walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	return out, walk(msg.Header.Get("Content-Type"), "", msg.Body)
}
