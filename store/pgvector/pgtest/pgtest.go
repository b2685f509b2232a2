// Package pgtest starts a throwaway PostgreSQL server with pgvector for
// tests: initdb in a temporary directory (as the postgres user when the test
// runs as root, since initdb refuses root), a free loopback port, the socket
// in the same directory, fsync off (unless REEMBED_PG_DURABLE=1); stopped and removed by [Stop].
//
// Tests call [DSN], which starts the shared server on first use and creates
// a fresh database per call. When PostgreSQL or pgvector is absent the test
// is skipped with a message, unless REEMBED_REQUIRE_PG=1 or
// REEMBED_REQUIRE_INTEROP=1 is set (as .ci/run does): then it fails.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
)

// Password is the test superuser's password: tests grep every output for it.
const Password = "s3cret-Pg-pass-5d1f"

// User is the test superuser.
const User = "reembed"

// Server is a running throwaway server.
type Server struct {
	Dir  string
	Port int
	bin  string
	as   string // user the server runs as ("" for the current one)
	mu   sync.Mutex
	n    int // databases created
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Required reports whether the environment requires the PostgreSQL tests to run.
func Required() bool {
	return os.Getenv("REEMBED_REQUIRE_PG") == "1" || os.Getenv("REEMBED_REQUIRE_INTEROP") == "1"
}

// BinDir returns the directory of initdb and postgres: $REEMBED_PG_BIN, else
// the newest /usr/lib/postgresql/*/bin, else the directory of initdb on PATH.
func BinDir() (string, error) {
	if d := os.Getenv("REEMBED_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	if len(dirs) > 0 {
		return dirs[len(dirs)-1], nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("PostgreSQL not found: no /usr/lib/postgresql/*/bin and no initdb on PATH (install postgresql and postgresql-NN-pgvector, or set REEMBED_PG_BIN)")
	}
	return filepath.Dir(p), nil
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// skipOrFail skips the test with msg, or fails it when the tests are required.
func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (REEMBED_REQUIRE_PG or REEMBED_REQUIRE_INTEROP is set)", msg)
	}
	t.Skip(msg)
}

// New starts a private server for one test, stopped and removed when the
// test ends; it skips (or fails, when required) as [DSN] does.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		skipOrFail(t, "no throwaway PostgreSQL with pgvector: "+err.Error())
	}
	t.Cleanup(s.Stop)
	return s
}

// DB creates a fresh database on the server and returns its connection URL.
func (s *Server) DB(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.n++
	db := fmt.Sprintf("t%d_%d", os.Getpid(), s.n)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("connecting to the test server: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("creating database: %v", err)
	}
	return s.URL(db)
}

// DSN returns a connection URL (with the test password) to a fresh, empty
// database on the shared server, starting the server on first use.
func DSN(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Start()
	}
	if shared.err != nil {
		skipOrFail(t, "no throwaway PostgreSQL with pgvector: "+shared.err.Error())
	}
	return shared.srv.DB(t)
}

// Stop stops the shared server, if one was started, and removes its directory.
// Call it from TestMain after m.Run.
func Stop() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
		shared.srv = nil
	}
}

// URL returns the server's connection URL for a database.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, Password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Start initializes and starts a new server.
func Start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		return nil, fmt.Errorf("no initdb in %s", bin)
	}
	if err := checkVector(bin); err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		s.as = "postgres"
	}
	if s.Dir, err = os.MkdirTemp("", "reembed-pg-"); err != nil {
		return nil, err
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	for try := 0; ; try++ {
		if s.Port, err = freePort(); err == nil {
			if err = s.start(); err == nil {
				return s, nil
			}
		}
		if try == 3 {
			os.RemoveAll(s.Dir)
			return nil, err
		}
	}
}

// checkVector reports whether the pgvector extension is installed for the server.
func checkVector(bin string) error {
	out, err := exec.Command(filepath.Join(bin, "pg_config"), "--sharedir").Output()
	if err != nil {
		return fmt.Errorf("running pg_config: %w", err)
	}
	ctl := filepath.Join(strings.TrimSpace(string(out)), "extension", "vector.control")
	if _, err := os.Stat(ctl); err != nil {
		return fmt.Errorf("pgvector is not installed (%s missing): install postgresql-NN-pgvector, or run ../shared/tools/install-pgvector.sh", ctl)
	}
	return nil
}

// command runs a server binary as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	if s.as == "" {
		return exec.Command(filepath.Join(s.bin, name), args...)
	}
	return exec.Command("runuser", append([]string{"-u", s.as, "--", filepath.Join(s.bin, name)}, args...)...)
}

func (s *Server) initdb() error {
	pw := filepath.Join(s.Dir, "pw")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o600); err != nil {
		return err
	}
	if s.as != "" {
		u, err := user.Lookup(s.as)
		if err != nil {
			return fmt.Errorf("tests run as root and there is no %q user to run PostgreSQL as: %w", s.as, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{s.Dir, pw} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("handing the data directory to %s: %w", s.as, err)
			}
		}
	}
	out, err := s.command("initdb", "-D", filepath.Join(s.Dir, "data"), "-U", User, "--pwfile", pw,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	return nil
}

func (s *Server) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=40", s.Port, s.Dir)
	if os.Getenv("REEMBED_PG_DURABLE") != "1" { // benchmarks keep PostgreSQL's durable defaults
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB"
	}
	out, err := s.command("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-o", opts, "-l", filepath.Join(s.Dir, "log"), "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the server immediately and removes its directory.
func (s *Server) Stop() {
	s.command("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(s.Dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Rows reads every row of a restored table, vectors widened to float32, and
// fails the test when a key appears twice.
func Rows(t testing.TB, dsn, table string) map[checkpoint.Key]checkpoint.Row {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT doc_id, chunk_index, chunk_sha256, text, model, embedded_at, embedding::vector::real[] FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[checkpoint.Key]checkpoint.Row{}
	var r checkpoint.Row
	_, err = pgx.ForEachRow(rows, []any{&r.DocID, &r.ChunkIndex, &r.ChunkSHA256, &r.Text, &r.Model, &r.EmbeddedAt, &r.Embedding}, func() error {
		if _, dup := out[r.Key()]; dup {
			t.Errorf("key %s twice in %s", r.Key(), table)
		}
		r.EmbeddedAt = r.EmbeddedAt.UTC()
		out[r.Key()] = r
		r.Embedding = nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
