package database

import (
	"net/url"
	"strings"
)

// redacted stands in for a secret in a connection string that is logged.
const redacted = "xxxxx"

// safeParams are the connection parameters whose values may be logged: where
// to connect, as whom, and how. Every other parameter's value is redacted,
// whatever its name: a connection string can carry a password in the user
// info, in password= or sslpassword=, key material in sslkey= or
// sslcert=, and libpq or pgx may learn new secret parameters; an allow-list
// keeps each of them out of logs.
var safeParams = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "database": true, "user": true,
	"sslmode": true, "sslrootcert": true, "sslnegotiation": true, "sslsni": true, "channel_binding": true,
	"gssencmode": true, "target_session_attrs": true, "application_name": true, "connect_timeout": true,
	"search_path": true, "timezone": true, "default_query_exec_mode": true, "statement_cache_capacity": true,
	"description_cache_capacity": true, "min_read_buffer_size": true,
	"pool_max_conns": true, "pool_min_conns": true, "pool_min_idle_conns": true, "pool_max_conn_lifetime": true,
	"pool_max_conn_lifetime_jitter": true, "pool_max_conn_idle_time": true, "pool_health_check_period": true,
}

// Redact returns a connection string, in either form pgx accepts (a
// postgres:// URL or libpq's key=value list), with every secret replaced by
// xxxxx, so that it can be logged or printed. A string it cannot read is
// not shown at all.
func Redact(conn string) string {
	trimmed := strings.TrimSpace(conn)
	if strings.HasPrefix(trimmed, "postgres://") || strings.HasPrefix(trimmed, "postgresql://") {
		return redactURL(trimmed)
	}
	if out, ok := redactKeywordValue(trimmed); ok {
		return out
	}
	return "(unreadable connection string)"
}

func redactURL(conn string) string {
	u, err := url.Parse(conn)
	if err != nil {
		return "(unreadable connection string)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "(unreadable connection string)"
	}
	for name, values := range q {
		if !safeParams[name] {
			for i := range values {
				values[i] = redacted
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// redactKeywordValue reads libpq's "key=value key='quoted value'" form, with
// backslash escapes inside quotes, and writes it back with unsafe values
// redacted.
func redactKeywordValue(conn string) (string, bool) {
	type pair struct{ key, value string }
	var pairs []pair
	s := conn
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return "", false
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t'\\") {
			return "", false
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var value strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for i := 0; i < len(s); i++ {
				switch c := s[i]; {
				case c == '\\' && i+1 < len(s):
					i++
					value.WriteByte(s[i])
				case c == '\'':
					s, closed = s[i+1:], true
				default:
					value.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return "", false
			}
		} else {
			end := strings.IndexAny(s, " \t\n\r\f\v")
			if end < 0 {
				end = len(s)
			}
			value.WriteString(s[:end])
			s = s[end:]
		}
		pairs = append(pairs, pair{key, value.String()})
	}
	if len(pairs) == 0 {
		return "", false
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		v := p.value
		if !safeParams[p.key] {
			v = redacted
		}
		out[i] = p.key + "=" + quoteValue(v)
	}
	return strings.Join(out, " "), true
}

func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
