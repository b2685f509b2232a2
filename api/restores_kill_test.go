package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/api"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner/jobs"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

// The child server of TestRestoreResumesAfterServerKill reads these.
const (
	childEnv   = "REEMBED_TEST_RESTORE_CHILD"
	childData  = "REEMBED_TEST_RESTORE_DATA"
	childBlock = "REEMBED_TEST_RESTORE_BLOCK"
)

// restoreChild is `reembed serve` with restores, in the test binary: it
// prints "listening ADDR", then "loading part N" before each part load and
// "building the index" before the build, and blocks before part
// REEMBED_TEST_RESTORE_BLOCK (before the build when it is -1) until killed.
func restoreChild() int {
	data := os.Getenv(childData)
	block, _ := strconv.Atoi(os.Getenv(childBlock))
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rebuilds, err := os.MkdirTemp("", "reembed-child-jobs-") // the parent holds data's rebuild jobs
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(rebuilds)
	mgr, err := jobs.Open(jobs.Config{DataDir: rebuilds, Logger: logger,
		NewEmbedder: func(jobs.Spec) (embedder.Embedder, error) { return nil, errors.New("no embedder in this test") }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rm, err := jobs.OpenRestores(jobs.RestoreConfig{DataDir: data, RebuildCheckpoint: mgr.CheckpointOf, Logger: logger,
		OpenSink: sinkOpener(func(ctx context.Context, n int) error {
			if n == 0 {
				fmt.Println("building the index")
			} else {
				fmt.Printf("loading part %d\n", n)
			}
			if n == block || n == 0 && block < 0 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := api.New(api.Config{Jobs: mgr, Logger: logger, Restores: rm})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	return func() int { fmt.Fprintln(os.Stderr, http.Serve(ln, srv)); return 1 }()
}

// lines reads r line by line into a channel, and keeps everything read.
func lines(r io.Reader, all *bytes.Buffer, mu *sync.Mutex) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			mu.Lock()
			all.WriteString(sc.Text() + "\n")
			mu.Unlock()
			ch <- sc.Text()
		}
	}()
	return ch
}

// waitLine returns the first line with prefix, failing if the output ends.
func waitLine(t *testing.T, ch <-chan string, prefix string) string {
	t.Helper()
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("the child ended before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-t.Context().Done():
			t.Fatal("test deadline")
		}
	}
}

// TestRestoreResumesAfterServerKill starts a restore on a server process,
// SIGKILLs the server after three parts are loaded (the fourth in flight),
// or once every part is loaded and the index build is next, then starts the
// server again on the same data directory: the restore resumes by itself,
// skips the parts loaded, and the table holds every checkpoint row exactly
// once; no output, log or file holds the password.
func TestRestoreResumesAfterServerKill(t *testing.T) {
	for _, tc := range []struct {
		name, block, line string
		skipped           int // parts the resumed run finds loaded; -1: all
	}{
		{"part in flight", "4", "loading part 4", 3},
		{"before the index build", "-1", "building the index", -1},
	} {
		t.Run(tc.name, func(t *testing.T) { killAndResume(t, tc.block, tc.line, tc.skipped) })
	}
}

func killAndResume(t *testing.T, block, line string, skipped int) {
	re := newRestoreEnv(t, nil)
	re.rm.Shutdown(t.Context()) // the child takes the restores directory
	want := storetest.Checkpoint(t, filepath.Join(re.data, "ck"), 200, 16, 20)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childData+"="+re.data, childBlock+"="+block, passwordEnv+"="+pgtest.Password)
	var out, errOut bytes.Buffer
	var mu sync.Mutex
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedBuffer{mu: &mu, b: &errOut}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ch := lines(stdout, &out, &mu)
	addr := strings.TrimPrefix(waitLine(t, ch, "listening "), "listening ")
	body := fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password_env":%q,"table":"killed"}`, re.dsn, passwordEnv)
	resp, err := http.Post("http://"+addr+"/v1/restores", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	posted, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, posted)
	}
	re.bodies = append(re.bodies, string(posted))
	id := (&httpResult{code: resp.StatusCode, body: posted}).job(t).ID
	waitLine(t, ch, line)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for range ch {
	}

	re.openRestores(t, nil) // the server's next start
	c := loadContract(t)
	deadline, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := re.rm.WaitRestore(deadline, id, func(j jobs.RestoreJob) bool { return !j.State.Active() }); err != nil {
		t.Fatal(err)
	}
	j := re.wait(t, c, id)
	if j.State != jobs.Succeeded || j.Runs != 2 || j.VerifyPassed == nil || !*j.VerifyPassed {
		t.Fatalf("after the restart: %s, %d runs, %q, verify %+v", j.State, j.Runs, j.LastError, j.Verify)
	}
	if skipped < 0 {
		skipped = j.Report.Parts
	}
	if j.Report.PartsSkipped != skipped || j.Report.PartsLoaded+j.Report.PartsSkipped != j.Report.Parts {
		t.Errorf("report %+v: want the %d parts loaded before the kill skipped, the rest loaded", j.Report, skipped)
	}
	checkTable(t, re.full, "killed", want)
	mu.Lock()
	defer mu.Unlock()
	re.checkNoPassword(t, out.String(), errOut.String())
	if !strings.Contains(errOut.String(), "restore job run started") {
		t.Errorf("the child's log shows no restore run:\n%s", trim(errOut.String()))
	}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestRestoreCancelAndResume cancels a restore while a part is in flight:
// it turns cancelled with the parts before it loaded; a resume loads the
// rest, each row once.
func TestRestoreCancelAndResume(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	var blocking sync.Mutex
	block := true
	re := newRestoreEnv(t, func(ctx context.Context, n int) error {
		blocking.Lock()
		b := block
		blocking.Unlock()
		if b && n == 3 {
			inFlight <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	c := loadContract(t)
	want := storetest.Checkpoint(t, filepath.Join(re.data, "ck"), 200, 16, 20)
	body := fmt.Sprintf(`{"checkpoint":"ck","dsn":%q,"password_env":%q,"table":"cancelled"}`, re.dsn, passwordEnv)
	res := re.do(t, c, request{method: http.MethodPost, path: "/v1/restores", body: body})
	mustCode(t, res, http.StatusAccepted)
	id := res.job(t).ID
	<-inFlight
	res = re.do(t, c, request{method: http.MethodPost, path: "/v1/restores/" + id + "/cancel"})
	mustCode(t, res, http.StatusAccepted)
	if j := res.job(t); !j.CancelRequested && j.State != jobs.Cancelled {
		t.Errorf("cancel answered %s without cancel_requested", j.State)
	}
	j := re.wait(t, c, id)
	if j.State != jobs.Cancelled || j.Report == nil || j.Report.PartsLoaded != 2 {
		t.Fatalf("after cancel: %s %q report %+v; want cancelled after 2 parts", j.State, j.LastError, j.Report)
	}
	res = re.do(t, c, request{method: http.MethodPost, path: "/v1/restores/" + id + "/cancel"})
	mustCode(t, res, http.StatusAccepted) // cancelling a cancelled job answers it again

	blocking.Lock()
	block = false
	blocking.Unlock()
	res = re.do(t, c, request{method: http.MethodPost, path: "/v1/restores/" + id + "/resume"})
	mustCode(t, res, http.StatusAccepted)
	j = re.wait(t, c, id)
	if j.State != jobs.Succeeded || j.Report.PartsSkipped != 2 || j.Runs != 2 {
		t.Fatalf("after resume: %s %q report %+v runs %d", j.State, j.LastError, j.Report, j.Runs)
	}
	checkTable(t, re.full, "cancelled", want)
	res = re.do(t, c, request{method: http.MethodPost, path: "/v1/restores/" + id + "/cancel"})
	mustCode(t, res, http.StatusConflict)
	re.checkNoPassword(t)
}
