package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner/jobs"
)

// TestServeHarness is `reembed serve` when the test binary is re-run by the
// tests below (litestream's technique); otherwise it skips.
func TestServeHarness(t *testing.T) {
	if os.Getenv("REEMBED_SERVE_HARNESS") != "1" {
		t.Skip("runs only as the server subprocess of TestServe* tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("REEMBED_SERVE_ARGS")), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	code := exitCode(e, runServe(ctx, e, args))
	stop()
	os.Exit(code)
}

const (
	testAPIKey = "sk-test-SECRET-key-0123456789"
	testToken  = "runbook-token-42"
)

// gatedProvider serves the simulator over HTTP, but holds the embedding
// requests whose number (counted from 1 over the whole test) is in holds:
// it reports them on held, and forwards them only when released; if the
// client goes away first (the server was killed), the simulator never sees
// them, so they are not billed.
type gatedProvider struct {
	sim *embedder.Simulator

	mu    sync.Mutex
	n     int
	holds map[int]chan struct{}
	held  chan int
}

func (g *gatedProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		g.mu.Lock()
		g.n++
		release, hold := g.holds[g.n]
		n := g.n
		g.mu.Unlock()
		if hold {
			// Read the body first: only then does net/http notice the
			// client going away and cancel r.Context().
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			g.held <- n
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
	}
	g.sim.ServeHTTP(w, r)
}

// server is one `reembed serve` subprocess.
type server struct {
	cmd    *exec.Cmd
	addr   string
	events chan map[string]any // the JSON log records
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

func startServer(t *testing.T, args []string) *server {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHarness$")
	cmd.Env = append(os.Environ(), "REEMBED_SERVE_HARNESS=1", "REEMBED_SERVE_ARGS="+string(a),
		"REEMBED_TEST_KEY="+testAPIKey, "REEMBED_TEST_TOKEN="+testToken)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, events: make(chan map[string]any, 10000), stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.Write(sc.Bytes())
			s.stderr.WriteByte('\n')
			s.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				s.events <- rec
			}
		}
		close(s.events)
	}()
	ev := s.waitFor(t, "serving")
	s.addr = "http://" + ev["addr"].(string)
	return s
}

// waitFor returns the next log record with msg (and, if given, attr=value).
func (s *server) waitFor(t *testing.T, msg string, attr ...string) map[string]any {
	t.Helper()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.mu.Lock()
				defer s.mu.Unlock()
				t.Fatalf("server exited before logging %q:\n%s", msg, s.stderr.String())
			}
			if ev["msg"] != msg {
				continue
			}
			if len(attr) == 2 && fmt.Sprint(ev[attr[0]]) != attr[1] {
				continue
			}
			return ev
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %q", msg)
		}
	}
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

func (s *server) call(t *testing.T, method, path, body string, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// fetchLedger reads the simulated provider's billing ledger over HTTP.
func fetchLedger(t *testing.T, base string) embedder.Ledger {
	t.Helper()
	res, err := http.Get(base + "/v1/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var l embedder.Ledger
	if err := json.NewDecoder(res.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l
}

func writeServeCorpus(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for i := range 4 {
		// Every sentence is unique, so the provider's ledger (keyed by text)
		// counts each chunk on its own.
		var text strings.Builder
		for j := range 8 {
			fmt.Fprintf(&text, "In document %d, sentence %d notes that recovery step %d is paid for once. ", i, j, i*100+j)
		}
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("doc-%d.txt", i)), []byte(text.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestServeResumesAfterSIGKILLAndSIGTERM starts a rebuild on a real
// `reembed serve` process against a simulated provider, SIGKILLs the server
// mid-job, starts it again (the job resumes by itself), SIGTERMs it mid-job
// (the job commits and is interrupted, exit 0), starts it again, and checks
// that the job finished with every chunk checkpointed once and, by the
// provider's ledger, paid for once.
func TestServeResumesAfterSIGKILLAndSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server subprocesses")
	}
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{APIKey: testAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	release7 := make(chan struct{})
	provider := &gatedProvider{sim: sim, held: make(chan int, 10),
		holds: map[int]chan struct{}{4: make(chan struct{}), 7: release7}}
	ps := httptest.NewServer(provider)
	defer ps.Close()

	data, root := t.TempDir(), writeServeCorpus(t)
	args := []string{"--addr", "127.0.0.1:0", "--data", data, "--corpus-root", root, "--provider-base-url", ps.URL + "/v1",
		"--api-key-env", "REEMBED_TEST_KEY", "--auth-token-env", "REEMBED_TEST_TOKEN", "--shutdown-timeout", "1m"}
	body := `{"paths":["."],"provider":"openai","model":"text-embedding-3-small","dimensions":8,"chunk_tokens":16,"chunk_overlap":0,` +
		`"batch_size":2,"part_rows":2,"concurrency":1,"budget_usd":1}`
	key := map[string]string{"Idempotency-Key": "drill-1"}
	var responses bytes.Buffer

	// Phase 1: three batches committed, the fourth in flight: SIGKILL.
	s1 := startServer(t, args)
	code, b := s1.call(t, "POST", "/v1/rebuilds", body, key)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/rebuilds: %d %s", code, b)
	}
	responses.Write(b)
	var job jobs.Job
	json.Unmarshal(b, &job)
	if n := <-provider.held; n != 4 {
		t.Fatalf("held request %d, want 4", n)
	}
	for range 3 {
		s1.waitFor(t, "committed checkpoint part")
	}
	if err := s1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s1.cmd.Wait()
	if ledger := fetchLedger(t, ps.URL); ledger.Totals.BilledInputs != 6 {
		t.Fatalf("after the kill the provider billed %d inputs, want 6", ledger.Totals.BilledInputs)
	}

	// Phase 2: the job resumes by itself; two more batches, the third in flight: SIGTERM.
	s2 := startServer(t, args) // it logs the resume before it serves
	if !strings.Contains(s2.log(), `"msg":"rebuild job resuming after restart","job_id":"`+job.ID) {
		t.Fatalf("the restarted server did not resume job %s:\n%s", job.ID, s2.log())
	}
	if n := <-provider.held; n != 7 {
		t.Fatalf("held request %d, want 7", n)
	}
	for range 2 {
		s2.waitFor(t, "committed checkpoint part")
	}
	code, b = s2.call(t, "POST", "/v1/rebuilds", body, key) // a retried POST: the same job
	responses.Write(b)
	var again jobs.Job
	json.Unmarshal(b, &again)
	if code != http.StatusAccepted || again.ID != job.ID || again.State != jobs.Running || again.Runs != 2 {
		t.Fatalf("retried POST after the restart: %d, job %s (%s, %d runs), want %s running in run 2", code, again.ID, again.State, again.Runs, job.ID)
	}
	if err := s2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s2.waitFor(t, "shutting down")
	// While the job commits (its request is still held), the server keeps
	// listening and /healthz says it is draining, to GET and HEAD.
	for {
		code, b := s2.call(t, "GET", "/healthz", "", nil)
		if code == http.StatusServiceUnavailable && strings.Contains(string(b), "shutting_down") {
			break
		}
		if code != http.StatusOK {
			t.Fatalf("GET /healthz during the drain: %d %s", code, b)
		}
	}
	if code, b := s2.call(t, "HEAD", "/healthz", "", nil); code != http.StatusServiceUnavailable || len(b) != 0 {
		t.Fatalf("HEAD /healthz during the drain: %d %q, want 503 and no body", code, b)
	}
	close(release7) // the request in flight finishes and is committed
	s2.waitFor(t, "rebuild job run ended", "state", "interrupted")
	if err := s2.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: server exited with %v, want 0\n%s", err, s2.log())
	}
	var jf struct{ Job jobs.Job }
	jb, err := os.ReadFile(filepath.Join(data, "jobs", job.ID, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(jb, &jf)
	if jf.Job.State != jobs.Interrupted {
		t.Fatalf("job file after SIGTERM: state %s, want interrupted", jf.Job.State)
	}

	// Phase 3: resumes again and finishes.
	s3 := startServer(t, args)
	s3.waitFor(t, "rebuild job run ended", "state", "succeeded")
	code, b = s3.call(t, "GET", "/v1/rebuilds/"+job.ID, "", nil)
	responses.Write(b)
	var final jobs.Job
	json.Unmarshal(b, &final)
	if code != 200 || final.State != jobs.Succeeded || final.Runs != 3 {
		t.Fatalf("final job: %d %s", code, b)
	}

	// Every chunk is in the checkpoint once, and was paid for once.
	ix, err := checkpoint.Scan(t.Context(), checkpoint.NewDir(filepath.Join(data, final.CheckpointDir)), checkpoint.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ledger := fetchLedger(t, ps.URL)
	if len(ix.Duplicates()) > 0 || len(ix.Unreadable()) > 0 {
		t.Errorf("checkpoint: %d duplicates, %d unreadable parts", len(ix.Duplicates()), len(ix.Unreadable()))
	}
	if ix.Len() != ledger.Totals.BilledInputs || ix.Len() < 12 {
		t.Errorf("checkpoint holds %d chunks; the provider billed %d inputs", ix.Len(), ledger.Totals.BilledInputs)
	}
	for sha, n := range ledger.Inputs {
		if n != 1 {
			t.Errorf("chunk %s paid %d times", sha[:12], n)
		}
	}
	for k, e := range ix.All() {
		if ledger.Inputs[e.SHA256] != 1 {
			t.Errorf("checkpointed chunk %s was paid %d times", k, ledger.Inputs[e.SHA256])
		}
	}
	if got, want := final.BilledTokens, ledger.Totals.PromptTokens; got > want {
		t.Errorf("the job reports %d billed tokens, the provider billed %d", got, want)
	}

	// The API key went to the provider and nowhere else.
	files := ""
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			b, _ := os.ReadFile(p)
			files += string(b)
		}
		return nil
	})
	for where, text := range map[string]string{"job files": files, "responses": responses.String(),
		"logs": s1.log() + s2.log() + s3.log()} {
		if strings.Contains(text, testAPIKey) || strings.Contains(text, testToken) {
			t.Errorf("a secret is in the %s", where)
		}
	}
}

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
	code := exitCode(e, runServe(t.Context(), e, []string{"--addr", "0.0.0.0:0", "--data", t.TempDir()}))
	if code != exitUsage || !strings.Contains(stderr.String(), "--insecure-listen") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	code = exitCode(e, runServe(t.Context(), e, []string{"--auth-token-env", "NOPE", "--data", t.TempDir()}))
	if code != exitUsage || !strings.Contains(stderr.String(), "NOPE") {
		t.Errorf("empty token env: exit %d, stderr %q", code, stderr.String())
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "0.0.0.0:80": false, ":8080": false, "10.0.0.1:80": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v", addr, got)
		}
	}
}
