package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The machine's cores are shared by PostgreSQL, the server and the load
// generator: when they are all busy, what each spends per event decides
// the throughput. cpuTimes reads it from /proc, so that the table can say
// where the time goes (issue 12).

// clockTick is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on
// Linux everywhere it runs).
const clockTick = 10 * time.Millisecond

// cpuTimes is CPU time used so far, by part.
type cpuTimes struct {
	postgres, server, bench time.Duration
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{a.postgres - b.postgres, a.server - b.server, a.bench - b.bench}
}

// readCPU reads the CPU time of PostgreSQL (every postgres process alive,
// and, through the postmaster's times of waited-for children, every backend
// that has exited), of the server process and of this process.
func readCPU(serverPID int) cpuTimes {
	var t cpuTimes
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	comm := map[int]string{}
	type stat struct {
		ppid           int
		self, children time.Duration
	}
	stats := map[int]stat{}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
		// After the command: state, ppid, … utime (14th field of the
		// line), stime, cutime, cstime.
		f := bytes.Fields(b[closing+1:])
		if len(f) < 15 {
			continue
		}
		n := func(i int) time.Duration {
			v, _ := strconv.ParseInt(string(f[i]), 10, 64)
			return time.Duration(v) * clockTick
		}
		comm[pid] = string(b[open+1 : closing])
		ppid, _ := strconv.Atoi(string(f[1]))
		stats[pid] = stat{ppid: ppid, self: n(11) + n(12), children: n(13) + n(14)}
	}
	for pid, s := range stats {
		switch {
		case comm[pid] == "postgres":
			t.postgres += s.self
			if comm[s.ppid] != "postgres" {
				t.postgres += s.children // the postmaster
			}
		case pid == serverPID:
			t.server = s.self
		case pid == os.Getpid():
			t.bench = s.self
		}
	}
	return t
}

// perEvent formats CPU time per event in milliseconds.
func perEvent(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000/float64(n))
}
