package metrics

import (
	"runtime/debug"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads pgxpool.Stat at scrape time: the pool keeps the
// numbers, so nothing is counted twice and a scrape costs one lock.
type poolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, constructing, total, max          *prometheus.Desc
	acquires, emptyAcquires, canceledAcquires         *prometheus.Desc
	acquireSeconds, emptyAcquireWaitSeconds, newConns *prometheus.Desc
	lifetimeDestroys, idleDestroys                    *prometheus.Desc
}

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "db_pool", name), help, nil, nil)
	}
	return &poolCollector{
		pool:                    pool,
		acquired:                d("acquired_conns", "Connections currently checked out of the pool."),
		idle:                    d("idle_conns", "Idle connections in the pool."),
		constructing:            d("constructing_conns", "Connections being established."),
		total:                   d("total_conns", "All connections of the pool (acquired, idle and constructing)."),
		max:                     d("max_conns", "The pool's size limit."),
		acquires:                d("acquires_total", "Successful connection acquisitions."),
		emptyAcquires:           d("empty_acquires_total", "Acquisitions that had to wait because no connection was idle."),
		canceledAcquires:        d("canceled_acquires_total", "Acquisitions cancelled by their context while waiting."),
		acquireSeconds:          d("acquire_seconds_total", "Total time spent acquiring connections."),
		emptyAcquireWaitSeconds: d("empty_acquire_wait_seconds_total", "Total time spent waiting for a connection when none was idle."),
		newConns:                d("new_conns_total", "Connections opened."),
		lifetimeDestroys:        d("max_lifetime_destroys_total", "Connections closed for reaching their maximum lifetime."),
		idleDestroys:            d("max_idle_destroys_total", "Connections closed for idling too long."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.acquired, c.idle, c.constructing, c.total, c.max,
		c.acquires, c.emptyAcquires, c.canceledAcquires,
		c.acquireSeconds, c.emptyAcquireWaitSeconds, c.newConns,
		c.lifetimeDestroys, c.idleDestroys,
	} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.constructing, float64(s.ConstructingConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceledAcquires, float64(s.CanceledAcquireCount()))
	counter(c.acquireSeconds, s.AcquireDuration().Seconds())
	counter(c.emptyAcquireWaitSeconds, s.EmptyAcquireWaitTime().Seconds())
	counter(c.newConns, float64(s.NewConnsCount()))
	counter(c.lifetimeDestroys, float64(s.MaxLifetimeDestroyCount()))
	counter(c.idleDestroys, float64(s.MaxIdleDestroyCount()))
}

// newBuildInfo is slotpay_build_info, always 1, labelled with what the
// binary says about itself, so a dashboard can tell which build answers.
func newBuildInfo() prometheus.Collector {
	labels := prometheus.Labels{"version": "unknown", "revision": "unknown", "modified": "unknown", "go_version": "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		labels["go_version"] = bi.GoVersion
		if v := bi.Main.Version; v != "" {
			labels["version"] = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				labels["revision"] = s.Value
			case "vcs.modified":
				labels["modified"] = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "The running binary: module version, VCS revision (unknown when built with -buildvcs=false) and Go version. Always 1.",
		ConstLabels: labels,
	})
	g.Set(1)
	return g
}
