package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/slotpay/slotpay/gen/db"
	"github.com/slotpay/slotpay/internal/config"
	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/managetoken"
	"github.com/slotpay/slotpay/internal/metrics"
)

// EmailKind is which e-mail the customer gets (SPEC §9).
type EmailKind string

const (
	EmailConfirmed   EmailKind = "confirmed"
	EmailRescheduled EmailKind = "rescheduled"
	EmailCancelled   EmailKind = "cancelled"
	EmailRefunded    EmailKind = "refunded"
)

// EmailArgs is one customer e-mail of a notification.
type EmailArgs struct {
	NotificationID uuid.UUID `json:"notification_id" river:"unique"`
}

func (EmailArgs) Kind() string { return "notify_email" }

// InsertOpts: one e-mail per notification, whatever inserts it again.
func (EmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Mailer hands a finished message to whoever delivers it: an SMTP server, or
// the log when SMTP_URL is empty.
type Mailer interface {
	Send(ctx context.Context, from, to string, msg []byte) error
}

// NewMailer returns the SMTP mailer of cfg, or one that logs.
func NewMailer(s *config.SMTP, logger *slog.Logger) Mailer {
	if s == nil {
		return logMailer{logger}
	}
	return &SMTPMailer{cfg: *s}
}

// logMailer writes e-mails to the log (no SMTP_URL): development and demos
// without a mail catcher still see what would have been sent.
type logMailer struct{ logger *slog.Logger }

func (l logMailer) Send(ctx context.Context, from, to string, msg []byte) error {
	l.logger.LogAttrs(ctx, slog.LevelInfo, "e-mail not sent (SMTP_URL is empty); the message follows",
		slog.String("from", from), slog.String("to", to), slog.String("message", string(msg)))
	return nil
}

// SMTPMailer sends through one SMTP server with net/smtp: one connection per
// message, STARTTLS when offered (smtp://) or TLS throughout (smtps://),
// PLAIN authentication when credentials are given (net/smtp refuses it
// unencrypted except to localhost).
type SMTPMailer struct{ cfg config.SMTP }

// smtpTimeout bounds one whole SMTP conversation.
const smtpTimeout = 30 * time.Second

func (m *SMTPMailer) Send(ctx context.Context, from, to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	d := &net.Dialer{Timeout: 10 * time.Second}
	var (
		conn net.Conn
		err  error
	)
	if m.cfg.TLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: m.cfg.Host}}).DialContext(ctx, "tcp", m.cfg.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", m.cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("smtp: connect to %s: %w", m.cfg.Addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: greeting from %s: %w", m.cfg.Addr, err)
	}
	defer c.Close()
	if !m.cfg.TLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(&tls.Config{ServerName: m.cfg.Host}); err != nil {
				return fmt.Errorf("smtp: STARTTLS: %w", err)
			}
		}
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host)); err != nil {
			return fmt.Errorf("smtp: authenticate: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("smtp: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp: write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: end of message: %w", err)
	}
	// The server took the message with its answer to the end of DATA: a
	// failed QUIT must not make the job send it again.
	_ = c.Quit()
	return nil
}

// EmailConfig is what the e-mail worker needs besides the database.
type EmailConfig struct {
	Mailer     Mailer
	From       *mail.Address
	PublicBase *url.URL
	Tokens     *managetoken.Issuer // nil: no manage link
	RetryBase  time.Duration
	Logger     *slog.Logger
	Metrics    *metrics.Metrics
}

// EmailWorker sends the customer's e-mail of a notification.
type EmailWorker struct {
	river.WorkerDefaults[EmailArgs]
	pool *pgxpool.Pool
	cfg  EmailConfig
}

// NewEmailWorker returns the worker of notify_email jobs.
func NewEmailWorker(pool *pgxpool.Pool, cfg EmailConfig) *EmailWorker {
	return &EmailWorker{pool: pool, cfg: cfg}
}

func (w *EmailWorker) Timeout(*river.Job[EmailArgs]) time.Duration { return time.Minute }

func (w *EmailWorker) NextRetry(job *river.Job[EmailArgs]) time.Time {
	return time.Now().Add(retryWait(w.cfg.RetryBase, job.Attempt))
}

func (w *EmailWorker) Work(ctx context.Context, job *river.Job[EmailArgs]) error {
	q := database.New(w.pool)
	n, err := q.NotificationGetByID(ctx, job.Args.NotificationID)
	if err != nil {
		return fmt.Errorf("load notification %s: %w", job.Args.NotificationID, err)
	}
	msg, to, err := w.compose(ctx, q, n)
	if err != nil {
		return err
	}
	started := time.Now()
	sendErr := w.cfg.Mailer.Send(ctx, w.cfg.From.Address, to, msg)
	outcome := "delivered"
	if _, logs := w.cfg.Mailer.(logMailer); logs {
		outcome = "logged"
	}
	params := db.NotificationAttemptInsertParams{
		NotificationID: n.ID, Channel: "email", Target: to, Attempt: int32(job.Attempt), Outcome: outcome,
		DurationMs: int32(time.Since(started).Milliseconds()),
	}
	if sendErr != nil {
		params.Outcome, params.Error = "failed", ptr(sendErr.Error())
	}
	recordAttempt(ctx, q, w.cfg.Logger, w.cfg.Metrics, n, params)
	if sendErr != nil {
		return fmt.Errorf("send e-mail of notification %s: %w", n.ID, sendErr)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// recordAttempt counts and logs one delivery attempt. It runs after the
// attempt, outside any transaction: a lost row costs the log one line, never
// a delivery (River's job state is what retries).
func recordAttempt(ctx context.Context, q *db.Queries, logger *slog.Logger, m *metrics.Metrics, n db.Notification, params db.NotificationAttemptInsertParams) {
	m.Notification(params.Channel, n.Type, params.Outcome)
	if err := q.NotificationAttemptInsert(ctx, params); err != nil {
		logger.LogAttrs(ctx, slog.LevelError, "could not record a delivery attempt", slog.String("channel", params.Channel),
			slog.String("notification_id", n.ID.String()), slog.String("error", err.Error()))
	}
}

// compose builds the message of n, to the customer of its booking.
func (w *EmailWorker) compose(ctx context.Context, q *db.Queries, n db.Notification) ([]byte, string, error) {
	var b Booking
	if err := json.Unmarshal(n.Data, &b); err != nil {
		return nil, "", fmt.Errorf("decode notification %s: %w", n.ID, err)
	}
	row, err := q.BookingGetByID(ctx, n.BookingID)
	if err != nil {
		return nil, "", fmt.Errorf("load booking %s: %w", n.BookingID, err)
	}
	res, err := q.ResourceGetByID(ctx, row.ResourceID)
	if err != nil {
		return nil, "", fmt.Errorf("load resource %s: %w", row.ResourceID, err)
	}
	e := Email{
		Kind: EmailKind(deref(n.EmailKind)), NotificationID: n.ID, Created: n.CreatedAt, From: w.cfg.From,
		Booking: b, ResourceName: res.Name, Timezone: res.Timezone,
	}
	if n.StatusChangeID != nil {
		seq, err := q.StatusChangeCountRescheduled(ctx, db.StatusChangeCountRescheduledParams{BookingID: n.BookingID, UpToID: *n.StatusChangeID})
		if err != nil {
			return nil, "", fmt.Errorf("count reschedules of %s: %w", n.BookingID, err)
		}
		e.Sequence = int(seq)
	}
	if (e.Kind == EmailConfirmed || e.Kind == EmailRescheduled) && w.cfg.Tokens != nil && row.ManageTokenSalt != nil {
		token := w.cfg.Tokens.Derive(row.ID, row.ManageTokenSalt)
		if _, logs := w.cfg.Mailer.(logMailer); logs {
			// A log is read by more people, and kept longer, than the
			// customer's mailbox: the secret that manages a paid booking
			// never goes there.
			token = RedactedToken
		}
		e.ManageURL = ManageURL(w.cfg.PublicBase, row.ID, token)
	}
	msg, err := e.Message()
	if err != nil {
		return nil, "", err
	}
	return msg, b.Customer.Email, nil
}

// RedactedToken stands in for the manage token in e-mails written to the log.
const RedactedToken = "REDACTED-e-mails-in-the-log-carry-no-token"

// ManageURL is the manage link of SPEC §9; the token rides in the fragment,
// which browsers never send to a server or put in a Referer.
func ManageURL(base *url.URL, bookingID uuid.UUID, token string) string {
	return base.String() + "/booking/manage?booking_id=" + bookingID.String() + "#token=" + url.QueryEscape(token)
}

// Email is one customer e-mail, everything it says decided.
type Email struct {
	Kind           EmailKind
	NotificationID uuid.UUID
	Created        time.Time
	From           *mail.Address
	Booking        Booking
	ResourceName   string
	Timezone       string
	ManageURL      string
	// Sequence is the calendar entry's revision: how often it moved.
	Sequence int
}

// Message renders the whole RFC 5322 message: multipart/mixed of a
// plain-text and HTML alternative and, for a booking in the calendar, an
// .ics. Everything in it derives from the notification (Date, Message-ID,
// boundaries), so a retried job sends the very same message and a receiver
// can drop the copy by its Message-ID.
func (e Email) Message() ([]byte, error) {
	view := e.view()
	var text, html bytes.Buffer
	if err := textTemplate.Execute(&text, view); err != nil {
		return nil, fmt.Errorf("render text e-mail: %w", err)
	}
	if err := htmlTemplate.Execute(&html, view); err != nil {
		return nil, fmt.Errorf("render HTML e-mail: %w", err)
	}

	var buf bytes.Buffer
	h := textproto.MIMEHeader{}
	domain := "localhost"
	if at := strings.LastIndexByte(e.From.Address, '@'); at >= 0 {
		domain = e.From.Address[at+1:]
	}
	to := mail.Address{Name: e.Booking.Customer.Name, Address: e.Booking.Customer.Email}
	header := [][2]string{
		{"From", e.From.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", view.Subject)},
		{"Date", e.Created.UTC().Format(time.RFC1123Z)},
		{"Message-ID", "<" + e.NotificationID.String() + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
	}
	for _, kv := range header {
		fmt.Fprintf(&buf, "%s: %s\r\n", kv[0], kv[1])
	}
	mixed := multipart.NewWriter(&buf)
	if err := mixed.SetBoundary("mixed-" + e.NotificationID.String()); err != nil {
		return nil, err
	}
	fmt.Fprintf(&buf, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mixed.Boundary())

	var alt bytes.Buffer
	altW := multipart.NewWriter(&alt)
	if err := altW.SetBoundary("alt-" + e.NotificationID.String()); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		ctype string
		body  []byte
	}{{"text/plain; charset=utf-8", text.Bytes()}, {"text/html; charset=utf-8", html.Bytes()}} {
		pw, err := altW.CreatePart(textproto.MIMEHeader{"Content-Type": {p.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write(p.body); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := altW.Close(); err != nil {
		return nil, err
	}
	h.Set("Content-Type", "multipart/alternative; boundary=\""+altW.Boundary()+"\"")
	pw, err := mixed.CreatePart(h)
	if err != nil {
		return nil, err
	}
	if _, err := pw.Write(alt.Bytes()); err != nil {
		return nil, err
	}

	if ics, method := e.calendar(); ics != nil {
		pw, err := mixed.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {"text/calendar; charset=utf-8; method=" + method},
			"Content-Transfer-Encoding": {"base64"},
			"Content-Disposition":       {`attachment; filename="booking.ics"`},
		})
		if err != nil {
			return nil, err
		}
		enc := base64.StdEncoding.EncodeToString(ics)
		for len(enc) > 76 {
			fmt.Fprintf(pw, "%s\r\n", enc[:76])
			enc = enc[76:]
		}
		fmt.Fprintf(pw, "%s\r\n", enc)
	}
	if err := mixed.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// calendar is the .ics of confirmed and rescheduled bookings (REQUEST) and
// of cancelled ones (CANCEL, so the calendar drops the entry).
func (e Email) calendar() ([]byte, string) {
	switch e.Kind {
	case EmailConfirmed, EmailRescheduled:
		return ICS(e.event("REQUEST")), "REQUEST"
	case EmailCancelled:
		return ICS(e.event("CANCEL")), "CANCEL"
	}
	return nil, ""
}

func (e Email) event(method string) CalendarEvent {
	ev := CalendarEvent{
		Method: method, UID: e.Booking.ID.String() + "@slotpay", Sequence: e.Sequence, Stamp: e.Created,
		Start: e.Booking.StartsAt, End: e.Booking.EndsAt, Summary: e.ResourceName,
		Organizer: e.From, Attendee: &mail.Address{Name: e.Booking.Customer.Name, Address: e.Booking.Customer.Email},
		URL: e.ManageURL,
	}
	if method == "CANCEL" {
		// A cancel supersedes the last revision the calendar holds.
		ev.Sequence++
	}
	return ev
}

type emailView struct {
	Subject, Heading, Intro string
	Resource, When          string
	Amount, Refund          string
	ManageURL               string
	BookingID               string
}

func (e Email) view() emailView {
	loc, err := time.LoadLocation(e.Timezone)
	if err != nil {
		loc = time.UTC
	}
	start, end := e.Booking.StartsAt.In(loc), e.Booking.EndsAt.In(loc)
	v := emailView{
		Resource:  e.ResourceName,
		When:      fmt.Sprintf("%s, %s–%s (%s)", start.Format("Mon 2 Jan 2006"), start.Format("15:04"), end.Format("15:04"), loc),
		Amount:    Money(e.Booking.AmountTotal, e.Booking.Currency),
		ManageURL: e.ManageURL,
		BookingID: e.Booking.ID.String(),
	}
	day := start.Format("2 Jan 2006")
	switch e.Kind {
	case EmailConfirmed:
		v.Subject = "Booking confirmed: " + e.ResourceName + " on " + day
		v.Heading, v.Intro = "Your booking is confirmed", "Thank you: your payment arrived and the slot is yours."
	case EmailRescheduled:
		v.Subject = "Booking moved: " + e.ResourceName + " now on " + day
		v.Heading, v.Intro = "Your booking has moved", "Your booking now takes place at the time below; the calendar entry is updated."
	case EmailCancelled:
		v.Subject = "Booking cancelled: " + e.ResourceName + " on " + day
		v.Heading, v.Intro = "Your booking is cancelled", "The slot below is released."
		if e.Booking.RefundAmount != nil {
			if *e.Booking.RefundAmount > 0 {
				v.Refund = Money(*e.Booking.RefundAmount, e.Booking.Currency) + " is refunded to your payment method; it may take a few days to appear."
			} else {
				v.Refund = "Under the cancellation policy, no refund is due."
			}
		}
	case EmailRefunded:
		v.Subject = "Refund issued: " + e.ResourceName + " on " + day
		v.Heading, v.Intro = "Your payment is refunded", "The payment for the booking below is refunded in full; it may take a few days to appear."
	}
	return v
}

// zeroDecimal are Stripe's currencies without a minor unit.
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true, "mga": true,
	"pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// Money formats an amount in minor units, e.g. 3000 eur → "EUR 30.00".
func Money(amount int64, currency string) string {
	code := strings.ToUpper(currency)
	if zeroDecimal[strings.ToLower(currency)] {
		return fmt.Sprintf("%s %d", code, amount)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s %s%d.%02d", code, sign, amount/100, amount%100)
}

var textTemplate = texttemplate.Must(texttemplate.New("text").Parse(`{{.Heading}}

{{.Intro}}

  {{.Resource}}
  {{.When}}
  Paid: {{.Amount}}
{{- if .Refund}}
  {{.Refund}}
{{- end}}
  Booking: {{.BookingID}}
{{if .ManageURL}}
Cancel or move your booking: {{.ManageURL}}
{{end}}
-- 
slotpay
`))

var htmlTemplate = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Subject}}</title></head>
<body style="margin:0;padding:24px;background:#f4f5f7;font-family:-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330">
<table role="presentation" width="100%" style="max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:24px">
<tr><td>
<h1 style="font-size:20px;margin:0 0 12px">{{.Heading}}</h1>
<p style="margin:0 0 16px">{{.Intro}}</p>
<table role="presentation" style="border-collapse:collapse;margin:0 0 16px">
<tr><td style="padding:4px 16px 4px 0;color:#5b6475">What</td><td style="padding:4px 0"><strong>{{.Resource}}</strong></td></tr>
<tr><td style="padding:4px 16px 4px 0;color:#5b6475">When</td><td style="padding:4px 0">{{.When}}</td></tr>
<tr><td style="padding:4px 16px 4px 0;color:#5b6475">Paid</td><td style="padding:4px 0">{{.Amount}}</td></tr>
{{- if .Refund}}
<tr><td style="padding:4px 16px 4px 0;color:#5b6475">Refund</td><td style="padding:4px 0">{{.Refund}}</td></tr>
{{- end}}
<tr><td style="padding:4px 16px 4px 0;color:#5b6475">Booking</td><td style="padding:4px 0;font-family:monospace">{{.BookingID}}</td></tr>
</table>
{{- if .ManageURL}}
<p style="margin:0 0 16px"><a href="{{.ManageURL}}" style="display:inline-block;background:#3056d3;color:#fff;padding:10px 16px;border-radius:6px;text-decoration:none">Cancel or move your booking</a></p>
{{- end}}
<p style="margin:0;color:#5b6475;font-size:13px">slotpay</p>
</td></tr></table>
</body></html>
`))
