package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/slotpay/slotpay/internal/database"
)

type health struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// handleHealthz says the process is up; it checks nothing else so that an
// orchestrator never restarts a healthy process over a database outage.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, health{Status: "ok"})
}

// handleReadyz says whether this instance can serve: the database answers
// and its schema is at this binary's latest migration.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	// Generous for a loaded host: a probe that times out itself reports
	// unready anyway.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "not ready", slog.String("error", err.Error()))
		writeJSON(w, http.StatusServiceUnavailable, health{Status: "unavailable", Reason: "database unreachable"})
		return
	}
	if err := database.CheckSchema(ctx, s.pool); err != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "not ready", slog.String("error", err.Error()))
		writeJSON(w, http.StatusServiceUnavailable, health{Status: "unavailable", Reason: "database schema is not at the latest migration"})
		return
	}
	writeJSON(w, http.StatusOK, health{Status: "ok"})
}
