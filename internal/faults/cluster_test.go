//go:build faults

package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/slotpay/slotpay/internal/database"
	"github.com/slotpay/slotpay/internal/testkit"
)

// cluster is a private PostgreSQL cluster of one test, so that it can be
// restarted without disturbing the shared server other tests use.
type cluster struct {
	t    *testing.T
	bin  string
	dir  string
	log  string
	port int
	// asPostgres prefixes commands when running as root: initdb and
	// postgres refuse to run as root.
	asPostgres []string
}

// newCluster initdb's and starts a cluster on a free port in a temp dir.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	bin := postgresBin(t)
	base, err := os.MkdirTemp("", "slotpay-faults-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	c := &cluster{t: t, bin: bin, dir: filepath.Join(base, "data"), log: filepath.Join(base, "log"), port: freePort(t)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run the cluster as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(base, uid, gid))
		c.asPostgres = []string{"runuser", "-u", "postgres", "--"}
	}
	c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	c.run("pg_ctl", "-D", c.dir, "-l", c.log, "-w", "-t", "60", "start",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", c.port, base))
	t.Cleanup(func() {
		// Immediate: nothing in it is worth a checkpoint.
		_ = c.command("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop").Run()
	})
	return c
}

func (c *cluster) command(tool string, args ...string) *exec.Cmd {
	argv := append(slices.Clone(c.asPostgres), append([]string{filepath.Join(c.bin, tool)}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// The server pg_ctl starts must not keep our output pipe open; if it
	// does anyway, stop waiting for it.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *cluster) run(tool string, args ...string) {
	c.t.Helper()
	out, err := c.command(tool, args...).CombinedOutput()
	require.NoError(c.t, err, "%s %s:\n%s", tool, strings.Join(args, " "), out)
}

// restart stops the server the way an operator's fast restart does (open
// sessions terminated, in-flight transactions rolled back) and starts it
// again with the same options.
func (c *cluster) restart() {
	c.t.Helper()
	// -l again: without it the restarted server would log to our pipe and
	// hold it open.
	c.run("pg_ctl", "-D", c.dir, "-l", c.log, "-m", "fast", "-w", "-t", "60", "restart")
}

// database creates and migrates database name in the cluster.
func (c *cluster) database(name string) testkit.TestDB {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgxpool.New(ctx, c.url("postgres"))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	admin.Close()
	require.NoError(t, err)

	pool, err := pgxpool.New(ctx, c.url(name))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, database.MigrateUp(ctx, pool))
	return testkit.TestDB{Pool: pool, URL: c.url(name), Name: name}
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// postgresBin finds the newest installed PostgreSQL's programs.
func postgresBin(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	t.Skip("no PostgreSQL server programs (initdb, pg_ctl) installed")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := strings.Cut(freeAddr(t), ":")
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}
