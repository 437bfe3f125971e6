package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator shares the machine's cores with the server and
// PostgreSQL, and whatever it spends is taken from them (the table's CPU
// rows say how much). So it does as little as pgbench's client does: each
// worker keeps one HTTP/1.1 connection, writes requests serialised before
// the clock starts, and reads each answer with net/http's own parser.

// requestTimeout bounds one request, as a client of a real server would.
const requestTimeout = 30 * time.Second

// wire is a request as it goes on the connection.
func (r request) wire() ([]byte, string, error) {
	u, err := url.Parse(r.url)
	if err != nil {
		return nil, "", err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: slotpay-bench\r\n", r.method, u.RequestURI(), u.Host)
	for name, values := range r.header {
		for _, v := range values {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(r.body))
	b.Write(r.body)
	return b.Bytes(), u.Host, nil
}

// conn is one worker's keep-alive connection.
type conn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
}

// do sends one request and reads its answer: the status, and the body if
// keep is set. A connection that failed or that the server closes is
// dialled again for the next request.
func (k *conn) do(ctx context.Context, wire []byte, method string, keep bool) (int, []byte, error) {
	if k.c == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", k.addr)
		if err != nil {
			return 0, nil, err
		}
		k.c, k.br = c, bufio.NewReaderSize(c, 8<<10)
	}
	fail := func(err error) (int, []byte, error) {
		k.c.Close()
		k.c = nil
		return 0, nil, err
	}
	_ = k.c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := k.c.Write(wire); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(k.br, &http.Request{Method: method})
	if err != nil {
		return fail(err)
	}
	var body []byte
	if keep {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return fail(err)
	}
	if resp.Close {
		k.c.Close()
		k.c = nil
	}
	return resp.StatusCode, body, nil
}

func (k *conn) close() {
	if k.c != nil {
		k.c.Close()
	}
}

// drive sends reqs with c workers and measures each request's latency.
func drive(ctx context.Context, reqs []request, c int) load {
	lat := make([]time.Duration, len(reqs))
	status := make([]int, len(reqs))
	bodies := make([][]byte, len(reqs))
	wires := make([][]byte, len(reqs))
	var addr string
	for i, r := range reqs {
		var err error
		if wires[i], addr, err = r.wire(); err != nil {
			panic(fmt.Sprintf("slotpay-bench: request %d: %v", i, err)) // the bench's own URLs
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			k := &conn{addr: addr}
			defer k.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) || ctx.Err() != nil {
					return
				}
				t := time.Now()
				status[i], bodies[i], _ = k.do(ctx, wires[i], reqs[i].method, reqs[i].keepBody)
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	l := load{n: len(reqs), elapsed: time.Since(start), lat: lat, statuses: map[int]int{}, reqs: reqs, codes: status, bodies: bodies}
	slices.Sort(l.lat)
	for _, s := range status {
		if s == 0 {
			l.errors++
		} else {
			l.statuses[s]++
		}
	}
	return l
}
