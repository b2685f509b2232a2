package checkpoint

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Crash test, litestream's re-exec technique: the test binary re-runs itself
// as a writer (TestCrashWriterProcess, gated by an environment variable) and
// the parent SIGKILLs it at chosen points of a commit, then resumes it.
//
// The writer stops at four points of every commit and waits for one byte on
// stdin before going on, printing what it is about to do:
//
//	begin NAME       temporary file created, nothing written
//	midwrite NAME    half of the part's bytes written to the temporary file
//	renamed NAME     renamed to its final name, directory not yet fsynced
//	committed NAME KEY,KEY,...   OnCommit: the part is committed
//
// Every other run pipelines its commits (Options.Pipeline): Add returns while
// a part commits in the background, and the stops above come from the commit's
// goroutine.
//
// so the parent kills at an exact point. In "free" runs the writer does not
// wait and the parent kills it while it races ahead, at whatever moment the
// SIGKILL lands. Environment: CHECKPOINT_CRASH_KILLS (default 20) and
// CHECKPOINT_CRASH_SEED for a longer soak, e.g.
//
//	CHECKPOINT_CRASH_KILLS=300 go test -run TestCrashDuringCommit -timeout 30m ./checkpoint  # ~2.5 min
const (
	crashEnvDir  = "CHECKPOINT_CRASH_CHILD_DIR"
	crashEnvFree = "CHECKPOINT_CRASH_CHILD_FREE"
	crashEnvDocs = "CHECKPOINT_CRASH_CHILD_DOCS"
	crashEnvPipe = "CHECKPOINT_CRASH_CHILD_PIPELINE"

	crashChunks, crashDims, crashPartRows = 10, 32, 10
)

// crashDocs sizes the corpus so that every kill lands before it is done.
func crashDocs(kills int) int { return 40 + 4*kills }

func TestCrashWriterProcess(t *testing.T) {
	root := os.Getenv(crashEnvDir)
	if root == "" {
		t.Skip("helper process for TestCrashDuringCommit")
	}
	docs, err := strconv.Atoi(os.Getenv(crashEnvDocs))
	if err != nil {
		t.Fatalf("%s: %v", crashEnvDocs, err)
	}
	if err := crashWriter(root, docs, os.Getenv(crashEnvFree) != "", os.Getenv(crashEnvPipe) != ""); err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func crashWriter(root string, docs int, free, pipeline bool) error {
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	in := bufio.NewReader(os.Stdin)
	say := func(format string, args ...any) error {
		fmt.Fprintf(out, format+"\n", args...)
		if err := out.Flush(); err != nil {
			return err
		}
		if free {
			return nil
		}
		_, err := in.ReadByte() // wait for the parent
		return err
	}
	dir := NewDir(root)
	// pending is the first error of a stop; with Pipeline the stops of a
	// commit run on its own goroutine.
	var pendingMu sync.Mutex
	var pendingErr error
	setPending := func(err error) {
		pendingMu.Lock()
		defer pendingMu.Unlock()
		if pendingErr == nil {
			pendingErr = err
		}
	}
	pending := func() error {
		pendingMu.Lock()
		defer pendingMu.Unlock()
		return pendingErr
	}
	ops := dir.ops
	dir.ops.createTemp = func(d, pattern string) (*os.File, error) {
		f, err := ops.createTemp(d, pattern)
		if err == nil && strings.HasPrefix(pattern, "part-") {
			setPending(say("begin %s", f.Name()))
		}
		return f, err
	}
	dir.ops.write = func(f *os.File, p []byte) (int, error) {
		half := len(p) / 2
		n, err := f.Write(p[:half])
		if err != nil {
			return n, err
		}
		if err := say("midwrite %s", f.Name()); err != nil {
			return n, err
		}
		m, err := f.Write(p[half:])
		return n + m, err
	}
	dir.ops.rename = func(oldPath, newPath string) error {
		if err := ops.rename(oldPath, newPath); err != nil {
			return err
		}
		if strings.Contains(newPath, "part-") {
			return say("renamed %s", newPath)
		}
		return nil
	}
	var added []string // keys added and not yet reported committed, in order
	w, err := Open(ctx, dir, Options{
		Manifest: testManifest(crashDims),
		PartRows: crashPartRows,
		Pipeline: pipeline,
		OnCommit: func(p PartInfo) {
			keys := added[:p.Rows]
			added = added[p.Rows:]
			setPending(say("committed %s %s", p.Name, strings.Join(keys, ",")))
		},
	})
	if err != nil {
		return err
	}
	rows := corpusRows(docs, crashChunks, crashDims)
	var todo []Row
	for _, r := range rows {
		if !w.Index().Has(r.Key(), r.ChunkSHA256) {
			todo = append(todo, r)
		}
	}
	fmt.Fprintf(out, "start present=%d removed=%d todo=%d\n", w.Index().Len(), len(w.Recovery().RemovedTemp), len(todo))
	for len(todo) > 0 {
		n := min(len(todo), 3) // a rebuild adds a batch at a time
		for _, r := range todo[:n] {
			added = append(added, r.Key().String())
		}
		if err := w.Add(ctx, todo[:n]...); err != nil {
			return err
		}
		if err := pending(); err != nil {
			return err
		}
		todo = todo[n:]
	}
	if err := w.Close(ctx); err != nil {
		return err
	}
	if err := pending(); err != nil {
		return err
	}
	fmt.Fprintln(out, "done")
	return out.Flush()
}

func TestCrashDuringCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary: skipped in -short")
	}
	t.Parallel()
	kills := 20
	if v, err := strconv.Atoi(os.Getenv("CHECKPOINT_CRASH_KILLS")); err == nil {
		kills = v
	}
	seed := uint64(42)
	if v, err := strconv.ParseUint(os.Getenv("CHECKPOINT_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("kills=%d seed=%d (CHECKPOINT_CRASH_KILLS, CHECKPOINT_CRASH_SEED)", kills, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	root := t.TempDir()
	docs := crashDocs(kills)
	rows := corpusRows(docs, crashChunks, crashDims)
	shaOf := map[string]string{}
	for _, r := range rows {
		shaOf[r.Key().String()] = r.ChunkSHA256
	}
	reported := map[string]bool{} // keys a writer said were committed
	killed, finished := 0, false
	atPoint := map[string]int{}
	removedTotal := 0
	for run := 0; !finished; run++ {
		if run > kills+20 {
			t.Fatalf("no complete run after %d runs", run)
		}
		free := run%4 == 3
		pipeline := run%2 == 1
		kill := killed < kills
		// Kill at the k-th stop of this run (four stops per commit).
		k := rng.IntN(4 * 3)
		res := runCrashWriter(t, root, docs, free, pipeline, kill, k, reported)
		if res.start.todo != len(rows)-res.presentBefore {
			t.Fatalf("run %d: writer would embed %d chunks, %d are missing", run, res.start.todo, len(rows)-res.presentBefore)
		}
		if res.start.present != res.presentBefore {
			t.Fatalf("run %d: writer's index has %d keys, the scan before the run %d", run, res.start.present, res.presentBefore)
		}
		if res.start.removed != res.tempsBefore {
			t.Fatalf("run %d: writer removed %d temporary files, %d were left", run, res.start.removed, res.tempsBefore)
		}
		removedTotal += res.start.removed
		if res.killedAt != "" {
			killed++
			atPoint[res.killedAt]++
		}
		finished = res.done

		// After every run: every part reads, no key twice, every reported
		// chunk present with its text.
		parts := readAllParts(t, root)
		seen := map[string]string{}
		for _, name := range sortedNames(parts) {
			for _, r := range parts[name] {
				k := r.Key().String()
				if prev, dup := seen[k]; dup {
					t.Fatalf("run %d: %s in %s and %s", run, k, prev, name)
				}
				seen[k] = name
				if r.ChunkSHA256 != shaOf[k] {
					t.Fatalf("run %d: %s has sha %s", run, k, r.ChunkSHA256)
				}
			}
		}
		for k := range reported {
			if _, ok := seen[k]; !ok {
				t.Fatalf("run %d: %s was reported committed and is missing", run, k)
			}
		}
	}
	t.Logf("kills by point: %v; temporary files removed on resume: %d", atPoint, removedTotal)
	if atPoint["begin"]+atPoint["midwrite"] > 0 && removedTotal == 0 {
		t.Error("kills during a commit left no temporary file to remove")
	}
	if killed < kills {
		t.Errorf("only %d kills landed, want %d", killed, kills)
	}
	for _, f := range listDir(t, root) {
		if classify(f).kind == kindTemp {
			t.Errorf("temporary file %s left after the final run", f)
		}
	}
	ix, err := Scan(context.Background(), NewDir(root), ScanOptions{})
	must(t, err)
	if r := ix.Coverage(expectedOf(rows)); !r.Complete() || r.Present != len(rows) || r.Duplicates != 0 || r.Superseded != 0 || r.Extra != 0 {
		t.Errorf("final coverage %+v", r)
	}
}

type crashStart struct{ present, removed, todo int }

type crashResult struct {
	presentBefore, tempsBefore int
	start                      crashStart
	killedAt                   string // the stop the writer was killed at, "" if not killed
	done                       bool
}

// runCrashWriter runs one writer process. With kill set it SIGKILLs the writer
// at its k-th stop (or, when free, as soon as it reports its k-th line).
func runCrashWriter(t *testing.T, root string, docs int, free, pipeline, kill bool, k int, reported map[string]bool) crashResult {
	t.Helper()
	var res crashResult
	if ix, err := Scan(context.Background(), NewDir(root), ScanOptions{}); err == nil {
		res.presentBefore = ix.Len()
	}
	for _, f := range listDir(t, root) {
		if fn := classify(f); fn.kind == kindTemp && fn.dir == "" {
			res.tempsBefore++
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+root, crashEnvDocs+"="+strconv.Itoa(docs))
	if free {
		cmd.Env = append(cmd.Env, crashEnvFree+"=1")
	}
	if pipeline {
		cmd.Env = append(cmd.Env, crashEnvPipe+"=1")
	}
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	defer stdin.Close()

	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	stops := 0
	for sc.Scan() {
		line := sc.Text()
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "start":
			if _, err := fmt.Sscanf(line, "start present=%d removed=%d todo=%d", &res.start.present, &res.start.removed, &res.start.todo); err != nil {
				t.Fatalf("bad line %q", line)
			}
			continue
		case "done":
			res.done = true
			continue
		case "error":
			t.Fatalf("writer: %s", line)
		case "committed":
			_, keys, _ := strings.Cut(rest, " ")
			for _, key := range strings.Split(keys, ",") {
				reported[key] = true
			}
		case "begin", "midwrite", "renamed":
		default:
			t.Fatalf("unexpected line %q", line)
		}
		if kill && stops == k {
			must(t, cmd.Process.Kill()) // SIGKILL: no deferred code, no flush
			res.killedAt = word
			if free {
				res.killedAt = "free"
			}
			break
		}
		stops++
		if !free {
			if _, err := stdin.Write([]byte{'g'}); err != nil {
				t.Fatalf("resuming writer: %v", err)
			}
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if res.killedAt == "" && err != nil {
		t.Fatalf("writer exited: %v", err)
	}
	if res.killedAt != "" && res.done {
		res.killedAt = "" // it finished before the kill landed
	}
	return res
}
