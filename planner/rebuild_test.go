package planner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/corpus/tokenizer"
	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
	"github.com/reembed/reembed/pricing"
)

// rbWords is the vocabulary of the synthetic rebuild corpus.
var rbWords = strings.Fields(`checkpoint embedding vector parquet resume budget token chunk
	provider request limiter corpus document manifest shard verify commit rename fsync directory
	the a of to and in is it that for on with as by at from this be are or an was not but all
	crash signal ledger billing rate minute second hour retry backoff latency throughput`)

// rbText returns about n words of deterministic text.
func rbText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			if i%12 == 0 {
				b.WriteString(".\n")
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteString(rbWords[rng.IntN(len(rbWords))])
	}
	b.WriteString(".\n")
	return b.String()
}

// rbCorpus writes docs plain-text documents (doc-NNN.txt, 150 to 450 words
// each) under a new directory and returns it.
func rbCorpus(t testing.TB, docs int, seed uint64) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "corpus")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range docs {
		text := rbText(rng, 150+rng.IntN(300))
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("doc-%03d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// rbModel returns a built-in model of the catalog.
func rbModel(t testing.TB, name string) pricing.Model {
	t.Helper()
	cat, err := pricing.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cat.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rbSpec is a small job over root: 8-dimension vectors, 64-token chunks,
// 8 inputs per request, 16 rows per part.
func rbSpec(t testing.TB, root string) RebuildSpec {
	return RebuildSpec{
		Paths: []string{root}, Model: rbModel(t, "text-embedding-3-small"), Dimensions: 8,
		ChunkTokens: 64, ChunkOverlap: 8,
		Limits:   Limits{Concurrency: 2, BatchSize: 8},
		PartRows: 16, Jobs: 2,
	}
}

// rbTokenizer returns the exact cl100k_base tokenizer.
func rbTokenizer(t testing.TB) tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rbSimulator returns an unlimited, fault-free in-process provider.
func rbSimulator(t testing.TB) *embedder.Simulator {
	t.Helper()
	sim, err := embedder.NewSimulator(embedder.SimulatorConfig{Model: "text-embedding-3-small"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// rbRun runs spec once with emb into the checkpoint directory out.
func rbRun(t testing.TB, ctx context.Context, emb embedder.Embedder, out string, spec RebuildSpec, opts ...func(*Rebuilder)) (*Summary, error) {
	t.Helper()
	rb := &Rebuilder{Embedder: emb, Tokenizer: rbTokenizer(t), Store: checkpoint.NewDir(out), ProgressInterval: 1 << 40}
	for _, o := range opts {
		o(rb)
	}
	return rb.Run(ctx, spec)
}

// rbRows reads every row of every committed part below out, by part name.
func rbRows(t testing.TB, out string) map[string][]checkpoint.Row {
	t.Helper()
	ctx := context.Background()
	store := checkpoint.NewDir(out)
	files, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]checkpoint.Row{}
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".parquet") {
			continue
		}
		r, err := store.Open(ctx, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := checkpoint.ReadRows(r, r.Size())
		r.Close()
		if err != nil {
			t.Fatalf("reading part %s: %v", f.Name, err)
		}
		parts[f.Name] = rows
	}
	return parts
}

// rbAllRows flattens rbRows in part-name order.
func rbAllRows(t testing.TB, out string) []checkpoint.Row {
	parts := rbRows(t, out)
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	slices.Sort(names)
	var all []checkpoint.Row
	for _, n := range names {
		all = append(all, parts[n]...)
	}
	return all
}

// rbVerify checks the coverage of spec's corpus by out.
func rbVerify(t testing.TB, out string, spec RebuildSpec) *checkpoint.Report {
	t.Helper()
	rep, err := Verify(context.Background(), rbTokenizer(t), checkpoint.NewDir(out), spec)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// rbInputs returns the input texts of a ledger, by hex sha256: how often each was billed.
func rbBilledTwice(l embedder.Ledger) int {
	n := 0
	for _, c := range l.Inputs {
		n += max(c-1, 0)
	}
	return n
}

// recordingFake is an embeddertest.Fake whose Func answers with vectors and
// records the inputs of every successful call; before, when set, may fail
// or cancel a call.
type recordingFake struct {
	embeddertest.Fake
	mu     sync.Mutex
	ok     []embedder.Input
	before func(ctx context.Context, n int, req *embedder.Request) error
}

func newRecordingFake(before func(ctx context.Context, n int, req *embedder.Request) error) *recordingFake {
	f := &recordingFake{before: before}
	f.Func = func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
		if f.before != nil {
			if err := f.before(ctx, n, req); err != nil {
				return nil, err
			}
		}
		f.mu.Lock()
		f.ok = append(f.ok, req.Inputs...)
		f.mu.Unlock()
		return embeddertest.Vectors(req, "text-embedding-3-small", 8), nil
	}
	return f
}

func (f *recordingFake) succeeded() []embedder.Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ok)
}

// rowKeys returns the keys of rows, sorted.
func rowKeys(rows []checkpoint.Row) []string {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Key().String()
	}
	slices.Sort(keys)
	return keys
}

// inputKeys returns the keys of inputs, sorted.
func inputKeys(ins []embedder.Input) []string {
	keys := make([]string, len(ins))
	for i, in := range ins {
		keys[i] = checkpoint.Key{DocID: in.DocID, ChunkIndex: int32(in.ChunkIndex)}.String()
	}
	slices.Sort(keys)
	return keys
}

// TestRebuildCompleteThenResumeEmbedsNothing runs a job to completion, checks
// every chunk is checkpointed once with the vector the provider returned,
// then runs it again: the second run sends no request.
func TestRebuildCompleteThenResumeEmbedsNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root, out := rbCorpus(t, 12, 1), t.TempDir()
	spec := rbSpec(t, root)
	sim := rbSimulator(t)

	var snaps []Progress
	var mu sync.Mutex
	sum, err := rbRun(t, ctx, sim, out, spec, func(rb *Rebuilder) {
		rb.OnProgress = func(p Progress) { mu.Lock(); snaps = append(snaps, p); mu.Unlock() }
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.Stopped != "complete" {
		t.Fatalf("Stopped = %q, want complete", sum.Stopped)
	}
	led := sim.Ledger()
	rows := rbAllRows(t, out)
	if int64(len(rows)) != sum.PlannedChunks || sum.EmbeddedChunks != sum.PlannedChunks || sum.CommittedChunks != sum.PlannedChunks {
		t.Errorf("rows %d, planned %d, embedded %d, committed %d: want all equal", len(rows), sum.PlannedChunks, sum.EmbeddedChunks, sum.CommittedChunks)
	}
	var tokens int64
	for _, r := range rows {
		tokens += int64(r.Tokens)
		want := embedder.SimulatedVector(spec.Model.Name, 8, r.Text)
		if !slices.Equal(r.Embedding, want) {
			t.Fatalf("row %s: embedding differs from the provider's vector", r.Key())
		}
		if r.ChunkSHA256 != embedder.TextSHA256(r.Text) {
			t.Fatalf("row %s: chunk_sha256 is not the sha256 of its text", r.Key())
		}
		if r.EmbeddedAt.Location() != time.UTC {
			t.Fatalf("row %s: embedded_at %v is not UTC", r.Key(), r.EmbeddedAt)
		}
	}
	if tokens != sum.PlannedTokens || led.Totals.PromptTokens != tokens || sum.BilledTokens != tokens {
		t.Errorf("tokens: checkpointed %d, planned %d, billed (ledger) %d, billed (summary) %d: want all equal",
			tokens, sum.PlannedTokens, led.Totals.PromptTokens, sum.BilledTokens)
	}
	if int64(led.Totals.Billed) != sum.Requests || sum.Requests != sum.PlannedRequests {
		t.Errorf("requests: ledger %d, summary %d, planned %d", led.Totals.Billed, sum.Requests, sum.PlannedRequests)
	}
	if n := rbBilledTwice(led); n != 0 {
		t.Errorf("%d chunks billed twice in one uninterrupted run", n)
	}
	if rep := rbVerify(t, out, spec); !rep.Complete() || rep.Duplicates != 0 || rep.Extra != 0 || rep.Expected != len(rows) {
		t.Errorf("Verify = %+v, want complete with no duplicate or extra", rep)
	}

	// Progress: the final snapshot arrives last, with the planned totals.
	mu.Lock()
	last := snaps[len(snaps)-1]
	mu.Unlock()
	if last.State != "complete" || last.PlannedChunks != sum.PlannedChunks || last.PlannedTokens != tokens ||
		last.EmbeddedChunks != sum.PlannedChunks || last.BilledTokens != tokens || last.Requests != sum.Requests {
		t.Errorf("final progress = %+v, want complete with planned = embedded = %d chunks, %d tokens", last, sum.PlannedChunks, tokens)
	}

	// Second run: nothing left, nothing sent.
	before := led.Totals.Requests
	sum2, err := rbRun(t, ctx, sim, out, spec)
	if err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if got := sim.Ledger().Totals.Requests - before; got != 0 || sum2.Requests != 0 || sum2.EmbeddedChunks != 0 {
		t.Errorf("second run sent %d requests (summary %d, embedded %d), want 0", got, sum2.Requests, sum2.EmbeddedChunks)
	}
	if sum2.ReusedChunks != int64(len(rows)) || sum2.PlannedChunks != 0 || sum2.Stopped != "complete" {
		t.Errorf("second run: reused %d, planned %d, stopped %q; want reused %d, planned 0, complete", sum2.ReusedChunks, sum2.PlannedChunks, sum2.Stopped, len(rows))
	}
	if got := len(rbAllRows(t, out)); got != len(rows) {
		t.Errorf("second run left %d rows, want %d", got, len(rows))
	}
}

// TestRebuildProgressWhileRunning checks that snapshots arrive while the
// job runs, carrying the planned totals, before the final one.
func TestRebuildProgressWhileRunning(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 6, 2), t.TempDir()
	spec := rbSpec(t, root)
	spec.Limits.Concurrency = 1
	running := make(chan Progress, 1)
	// The second request waits for a "running" snapshot, so one is seen
	// with work done and work left.
	fake := newRecordingFake(func(ctx context.Context, n int, _ *embedder.Request) error {
		if n == 2 {
			select {
			case <-running:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	var mu sync.Mutex
	var snaps []Progress
	sum, err := rbRun(t, t.Context(), fake, out, spec, func(rb *Rebuilder) {
		rb.ProgressInterval = time.Millisecond
		rb.OnProgress = func(p Progress) {
			mu.Lock()
			snaps = append(snaps, p)
			mu.Unlock()
			if p.State == "running" && p.EmbeddedChunks > 0 {
				select {
				case running <- p:
				default:
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var mid *Progress
	for i := range snaps {
		if snaps[i].State == "running" && snaps[i].EmbeddedChunks > 0 && snaps[i].EmbeddedChunks < sum.PlannedChunks {
			mid = &snaps[i]
			break
		}
	}
	if mid == nil {
		t.Fatalf("no running snapshot between the first and the last chunk among %d", len(snaps))
	}
	if mid.PlannedChunks != sum.PlannedChunks || mid.PlannedTokens != sum.PlannedTokens || mid.PlannedCost != sum.PlannedCost {
		t.Errorf("running snapshot planned %d chunks, %d tokens, $%s; want %d, %d, $%s",
			mid.PlannedChunks, mid.PlannedTokens, mid.PlannedCost, sum.PlannedChunks, sum.PlannedTokens, sum.PlannedCost)
	}
	if last := snaps[len(snaps)-1]; last.State != "complete" || last.EmbeddedChunks != sum.PlannedChunks {
		t.Errorf("last snapshot = %+v, want the complete one", last)
	}
}

// TestRebuildBudget stops a job whose budget is below the corpus cost: the
// provider never bills past the budget, what was billed is committed, and a
// rerun with a larger budget finishes without paying for anything twice.
func TestRebuildBudget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root, out := rbCorpus(t, 20, 3), t.TempDir()
	spec := rbSpec(t, root)
	sim := rbSimulator(t)

	est, err := Run(ctx, rbTokenizer(t), spec.estimateRequest())
	if err != nil {
		t.Fatal(err)
	}
	full := est.Estimates[0].CostUSD
	spec.Budget = full / 3
	if spec.Budget < 20 {
		t.Fatalf("corpus costs $%s: too little to test a budget", full)
	}

	sum, err := rbRun(t, ctx, sim, out, spec)
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("Run with budget $%s of $%s: err = %v, want ErrBudgetExceeded", spec.Budget, full, err)
	}
	if sum == nil || sum.Stopped != "budget" {
		t.Fatalf("summary = %+v, want stopped by budget", sum)
	}
	led := sim.Ledger()
	var ledgerCost pricing.Micros
	for _, r := range led.Requests {
		ledgerCost += pricing.CostCeil(int64(r.BilledTokens), spec.Model.PricePer1M)
	}
	if ledgerCost > spec.Budget || sum.Cost > spec.Budget {
		t.Errorf("spent $%s (ledger, rounded up per request), $%s (summary); budget $%s", ledgerCost, sum.Cost, spec.Budget)
	}
	if led.Totals.Billed == 0 {
		t.Fatal("nothing was billed before the budget stopped the job")
	}
	// Everything billed is committed.
	rows := rbAllRows(t, out)
	committed := map[string]int{}
	for _, r := range rows {
		committed[r.ChunkSHA256]++
	}
	for sha, n := range led.Inputs {
		if committed[sha] != n {
			t.Fatalf("text %s… billed %d times, committed %d times", sha[:8], n, committed[sha])
		}
	}
	if int64(len(rows)) != sum.CommittedChunks {
		t.Errorf("%d rows on disk, summary says %d committed", len(rows), sum.CommittedChunks)
	}

	// Resume with a budget that covers the rest.
	spec.Budget = full * 2
	sum2, err := rbRun(t, ctx, sim, out, spec)
	if err != nil {
		t.Fatalf("resumed Run: %v", err)
	}
	if sum2.ReusedChunks != int64(len(rows)) {
		t.Errorf("resume reused %d chunks, want the %d committed", sum2.ReusedChunks, len(rows))
	}
	led = sim.Ledger()
	if n := rbBilledTwice(led); n != 0 {
		t.Errorf("%d chunks billed twice across the budget stop", n)
	}
	if led.Totals.PromptTokens != est.Estimates[0].Tokens {
		t.Errorf("billed %d tokens in all, the corpus has %d", led.Totals.PromptTokens, est.Estimates[0].Tokens)
	}
	if rep := rbVerify(t, out, spec); !rep.Complete() || rep.Duplicates != 0 {
		t.Errorf("Verify = %+v, want complete", rep)
	}
}

// TestRebuildRefusesAnotherManifest resumes into a checkpoint made with
// another model, dimensions or chunking: refused with ErrManifestMismatch
// and nothing sent; Force overrides chunking, never model or dimensions.
func TestRebuildRefusesAnotherManifest(t *testing.T) {
	t.Parallel()
	root := rbCorpus(t, 3, 4)
	base := rbSpec(t, root)
	cases := []struct {
		name   string
		change func(*RebuildSpec)
	}{
		{"model", func(s *RebuildSpec) { s.Model = rbModel(t, "text-embedding-3-large") }},
		{"dimensions", func(s *RebuildSpec) { s.Dimensions = 16 }},
		{"chunk-tokens", func(s *RebuildSpec) { s.ChunkTokens = 32 }},
		{"chunk-overlap", func(s *RebuildSpec) { s.ChunkOverlap = 0 }},
		{"plain-text", func(s *RebuildSpec) { s.Corpus.PlainText = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, out := t.Context(), t.TempDir()
			if _, err := rbRun(t, ctx, rbSimulator(t), out, base); err != nil {
				t.Fatal(err)
			}
			other := base
			tc.change(&other)
			fake := newRecordingFake(nil)
			fake.Func = func(ctx context.Context, n int, req *embedder.Request) (*embedder.Result, error) {
				return embeddertest.Vectors(req, other.Model.Name, other.dimensions()), nil
			}
			_, err := rbRun(t, ctx, fake, out, other)
			if !errors.Is(err, checkpoint.ErrManifestMismatch) {
				t.Fatalf("err = %v, want ErrManifestMismatch", err)
			}
			if fake.Calls() != 0 {
				t.Errorf("a refused job sent %d requests", fake.Calls())
			}
			other.Force = true
			sum, err := rbRun(t, ctx, fake, out, other)
			if tc.name == "model" || tc.name == "dimensions" {
				// Never forced: a checkpoint never mixes models or dimensions.
				if !errors.Is(err, checkpoint.ErrManifestMismatch) || fake.Calls() != 0 {
					t.Fatalf("forced run with another %s: err = %v after %d requests, want refused before any", tc.name, err, fake.Calls())
				}
				return
			}
			if err != nil {
				t.Fatalf("forced Run: %v", err)
			}
			if sum.Stopped != "complete" {
				t.Errorf("forced run stopped %q", sum.Stopped)
			}
		})
	}
}

// TestRebuildReembedsCorruptPart overwrites a committed part with garbage:
// the next run moves it aside, reports it, and embeds exactly its chunks again.
func TestRebuildReembedsCorruptPart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		garbage func(old []byte) []byte
	}{
		{"random-bytes", func(old []byte) []byte {
			b := make([]byte, len(old))
			rand.NewChaCha8([32]byte{1}).Read(b)
			return b
		}},
		{"truncated", func(old []byte) []byte { return old[:len(old)/2] }},
		{"zero-length", func([]byte) []byte { return nil }},
		{"magic-framed-garbage", func([]byte) []byte { return []byte("PAR1 this is not a parquet file PAR1") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			root, out := rbCorpus(t, 8, 5), t.TempDir()
			spec := rbSpec(t, root)
			if _, err := rbRun(t, ctx, rbSimulator(t), out, spec); err != nil {
				t.Fatal(err)
			}
			parts := rbRows(t, out)
			const victim = "part-000002.parquet"
			lost, ok := parts[victim]
			if !ok || len(parts) < 3 {
				t.Fatalf("want at least 3 parts including %s, got %d", victim, len(parts))
			}
			old, err := os.ReadFile(filepath.Join(out, victim))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, victim), tc.garbage(old), 0o644); err != nil {
				t.Fatal(err)
			}
			if rep := rbVerify(t, out, spec); rep.Complete() || rep.Missing != len(lost) || rep.UnreadableParts != 1 {
				t.Errorf("Verify after corruption: missing %d, unreadable %d; want %d, 1", rep.Missing, rep.UnreadableParts, len(lost))
			}

			sim := rbSimulator(t)
			sum, err := rbRun(t, ctx, sim, out, spec)
			if err != nil {
				t.Fatalf("Run after corruption: %v", err)
			}
			if !slices.Equal(sum.UnreadableParts, []string{victim}) {
				t.Errorf("UnreadableParts = %q, want [%s]", sum.UnreadableParts, victim)
			}
			if _, err := os.Stat(filepath.Join(out, victim)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the corrupt part is still at %s (stat err %v)", victim, err)
			}
			if aside, _ := filepath.Glob(filepath.Join(out, victim+"*")); len(aside) != 1 {
				t.Errorf("want the corrupt part moved aside next to it, found %q", aside)
			}
			led := sim.Ledger()
			if led.Totals.BilledInputs != len(lost) || sum.EmbeddedChunks != int64(len(lost)) {
				t.Errorf("re-embedded %d chunks (summary %d), want the %d of the corrupt part", led.Totals.BilledInputs, sum.EmbeddedChunks, len(lost))
			}
			for _, r := range lost {
				if led.Inputs[r.ChunkSHA256] == 0 {
					t.Errorf("chunk %s of the corrupt part was not embedded again", r.Key())
				}
			}
			if rep := rbVerify(t, out, spec); !rep.Complete() || rep.Duplicates != 0 || rep.UnreadableParts != 0 {
				t.Errorf("Verify after resume = %+v, want complete", rep)
			}
		})
	}
}

// TestRebuildReembedsChangedDocument edits a document between runs: only
// its changed chunks are embedded again, and the old rows are superseded.
func TestRebuildReembedsChangedDocument(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root, out := rbCorpus(t, 6, 6), t.TempDir()
	spec := rbSpec(t, root)
	if _, err := rbRun(t, ctx, rbSimulator(t), out, spec); err != nil {
		t.Fatal(err)
	}
	before := rbAllRows(t, out)
	// Rewrite the end of doc-003: its first chunks keep their text.
	path := filepath.Join(root, "doc-003.txt")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(old[:len(old)/2]) + rbText(rand.New(rand.NewPCG(99, 9)), 200)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := rbVerify(t, out, spec)
	if rep.Complete() || rep.Stale == 0 {
		t.Fatalf("Verify after the edit = %+v, want stale chunks", rep)
	}

	sim := rbSimulator(t)
	sum, err := rbRun(t, ctx, sim, out, spec)
	if err != nil {
		t.Fatalf("Run after the edit: %v", err)
	}
	// Expected: chunks of doc-003 whose (index, sha) is not checkpointed.
	have := map[string]bool{}
	for _, r := range before {
		have[r.Key().String()+" "+r.ChunkSHA256] = true
	}
	after := rbAllRows(t, out)
	var fresh []checkpoint.Row
	for _, r := range after[len(before):] {
		if r.DocID != "doc-003.txt" {
			t.Errorf("re-embedded %s, which did not change", r.Key())
		}
		if have[r.Key().String()+" "+r.ChunkSHA256] {
			t.Errorf("re-embedded %s with unchanged text", r.Key())
		}
		fresh = append(fresh, r)
	}
	if len(fresh) == 0 || int64(len(fresh)) != sum.EmbeddedChunks || sim.Ledger().Totals.BilledInputs != len(fresh) {
		t.Errorf("%d new rows, summary embedded %d, ledger billed %d inputs", len(fresh), sum.EmbeddedChunks, sim.Ledger().Totals.BilledInputs)
	}
	rep = rbVerify(t, out, spec)
	if !rep.Complete() || rep.Stale != 0 || rep.Duplicates != 0 {
		t.Errorf("Verify after resume = %+v, want complete", rep)
	}
	if rep.Superseded != countSameKey(before, fresh) || rep.Superseded == 0 {
		t.Errorf("Superseded = %d, want the %d old rows whose key was embedded again", rep.Superseded, countSameKey(before, fresh))
	}
	// A chunk index the shorter or longer text no longer has is extra.
	if rep.Extra != len(before)+len(fresh)-rep.Superseded-rep.Expected {
		t.Errorf("Extra = %d, want %d", rep.Extra, len(before)+len(fresh)-rep.Superseded-rep.Expected)
	}
}

// countSameKey counts the rows of old whose key appears in fresh.
func countSameKey(old, fresh []checkpoint.Row) int {
	keys := map[checkpoint.Key]bool{}
	for _, r := range fresh {
		keys[r.Key()] = true
	}
	n := 0
	for _, r := range old {
		if keys[r.Key()] {
			n++
		}
	}
	return n
}

// TestRebuildFailsOnNonRetryableError fails the third request with a 400
// naming a chunk: the job stops with an error naming that chunk, and the
// rows of the first two requests are committed.
func TestRebuildFailsOnNonRetryableError(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 6, 7), t.TempDir()
	spec := rbSpec(t, root)
	spec.Limits.Concurrency = 1
	var culprit embedder.Input
	fake := newRecordingFake(func(_ context.Context, n int, req *embedder.Request) error {
		if n != 3 {
			return nil
		}
		culprit = req.Inputs[1]
		return &embedder.ProviderError{Status: 400, Type: "invalid_request_error", Code: "invalid_input",
			Message: "input is invalid", DocID: culprit.DocID, ChunkIndex: culprit.ChunkIndex, InputIndex: 1, Inputs: len(req.Inputs)}
	})
	sum, err := rbRun(t, t.Context(), fake, out, spec)
	var pe *embedder.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 {
		t.Fatalf("err = %v, want a *ProviderError 400", err)
	}
	if msg := err.Error(); !strings.Contains(msg, culprit.DocID) || !strings.Contains(msg, fmt.Sprintf("chunk %d", culprit.ChunkIndex)) {
		t.Errorf("error %q does not name chunk %d of %s", msg, culprit.ChunkIndex, culprit.DocID)
	}
	if sum == nil || sum.Stopped != "error" || sum.LastError == "" {
		t.Errorf("summary = %+v, want stopped by error with the last error", sum)
	}
	if fake.Calls() != 3 {
		t.Errorf("%d requests, want 3 (none after the failure)", fake.Calls())
	}
	if got, want := rowKeys(rbAllRows(t, out)), inputKeys(fake.succeeded()); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("committed %d rows, want the %d of the successful requests", len(got), len(want))
	}
}

// TestRebuildInterrupted cancels the job during its third request: Run
// returns ErrInterrupted, the request in flight finishes and is committed
// with the earlier ones, no request starts after the cancel, and a resume
// embeds exactly the rest.
func TestRebuildInterrupted(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 6, 8), t.TempDir()
	spec := rbSpec(t, root)
	spec.Limits.Concurrency = 1
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fake := newRecordingFake(func(_ context.Context, n int, _ *embedder.Request) error {
		if n == 3 {
			cancel()
		}
		return nil
	})
	sum, err := rbRun(t, ctx, fake, out, spec)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if sum.Stopped != "interrupted" {
		t.Errorf("Stopped = %q, want interrupted", sum.Stopped)
	}
	if fake.Calls() != 3 {
		t.Errorf("%d requests, want 3: none may start after the cancel", fake.Calls())
	}
	first := fake.succeeded()
	if got, want := rowKeys(rbAllRows(t, out)), inputKeys(first); !slices.Equal(got, want) {
		t.Errorf("committed %d rows, want the %d of all 3 requests, the one in flight included", len(got), len(want))
	}

	fake2 := newRecordingFake(nil)
	sum2, err := rbRun(t, t.Context(), fake2, out, spec)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if sum2.ReusedChunks != int64(len(first)) {
		t.Errorf("resume reused %d chunks, want %d", sum2.ReusedChunks, len(first))
	}
	if both := append(inputKeys(first), inputKeys(fake2.succeeded())...); len(both) != len(rowKeys(rbAllRows(t, out))) {
		t.Errorf("the two runs embedded %d chunks, the checkpoint has %d rows", len(both), len(rbAllRows(t, out)))
	}
	for _, k := range inputKeys(fake2.succeeded()) {
		if slices.Contains(inputKeys(first), k) {
			t.Errorf("resume embedded %s again", k)
		}
	}
	if rep := rbVerify(t, out, spec); !rep.Complete() || rep.Duplicates != 0 {
		t.Errorf("Verify = %+v, want complete", rep)
	}
}

// TestRebuildValidate rejects bad specs with the flag named.
func TestRebuildValidate(t *testing.T) {
	t.Parallel()
	root := rbCorpus(t, 1, 9)
	cases := []struct {
		name   string
		change func(*RebuildSpec)
		want   string
	}{
		{"no-path", func(s *RebuildSpec) { s.Paths = nil }, "no corpus path"},
		{"negative-dimensions", func(s *RebuildSpec) { s.Dimensions = -1 }, "--dimensions"},
		{"too-many-dimensions", func(s *RebuildSpec) { s.Dimensions = 4096 }, "--dimensions"},
		{"fixed-dimensions", func(s *RebuildSpec) { s.Model = rbModel(t, "text-embedding-ada-002"); s.Dimensions = 8 }, "--dimensions"},
		{"negative-part-rows", func(s *RebuildSpec) { s.PartRows = -1 }, "--part-rows"},
		{"negative-budget", func(s *RebuildSpec) { s.Budget = -1 }, "--budget-usd"},
		{"bad-shard", func(s *RebuildSpec) { s.Shard = checkpoint.Shard{Index: 2, Count: 2} }, "--shard"},
		{"overlap", func(s *RebuildSpec) { s.ChunkOverlap = 64 }, "--chunk-overlap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := rbSpec(t, root)
			tc.change(&spec)
			fake := newRecordingFake(nil)
			out := t.TempDir()
			_, err := rbRun(t, t.Context(), fake, out, spec)
			if err == nil || !strings.Contains(cliText(err), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			if fake.Calls() != 0 {
				t.Errorf("an invalid job sent %d requests", fake.Calls())
			}
			if files, _ := os.ReadDir(out); len(files) != 0 {
				t.Errorf("an invalid job wrote %d files", len(files))
			}
		})
	}
}

// signalStore is a checkpoint.Store that reports each committed part on
// parts, and fails part commits with failParts when set.
type signalStore struct {
	checkpoint.Store
	parts     chan string
	failParts error
}

func (s *signalStore) Commit(ctx context.Context, name string, write func(io.Writer) error) error {
	part := strings.HasSuffix(name, ".parquet")
	if part && s.failParts != nil {
		return s.failParts
	}
	if err := s.Store.Commit(ctx, name, write); err != nil {
		return err
	}
	if part && s.parts != nil {
		select {
		case s.parts <- name:
		default:
		}
	}
	return nil
}

// TestRebuildFlushInterval checks that rows are committed every
// FlushInterval even when a part is far from full: the third request waits
// until a part is committed, which can only hold rows of the first two.
func TestRebuildFlushInterval(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 6, 10), t.TempDir()
	spec := rbSpec(t, root)
	spec.Limits.Concurrency = 1
	spec.PartRows = 1_000_000
	spec.FlushInterval = time.Millisecond
	store := &signalStore{Store: checkpoint.NewDir(out), parts: make(chan string, 1)}
	var firstPart string
	fake := newRecordingFake(func(ctx context.Context, n int, _ *embedder.Request) error {
		if n == 3 {
			select {
			case firstPart = <-store.parts:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	rb := &Rebuilder{Embedder: fake, Tokenizer: rbTokenizer(t), Store: store}
	if _, err := rb.Run(t.Context(), spec); err != nil {
		t.Fatalf("Run: %v", err)
	}
	parts := rbRows(t, out)
	first := rowKeys(parts[firstPart])
	early := inputKeys(fake.succeeded()[:2*spec.Limits.BatchSize])
	if len(first) == 0 || len(first) > len(early) {
		t.Fatalf("the first part holds %d rows, want 1 to %d from the first two requests", len(first), len(early))
	}
	for _, k := range first {
		if !slices.Contains(early, k) {
			t.Errorf("the first part holds %s, not from the first two requests", k)
		}
	}
	if len(parts) < 2 {
		t.Errorf("%d parts with PartRows %d: the flush interval committed nothing", len(parts), spec.PartRows)
	}
}

// TestRebuildGracePeriod interrupts a job whose request hangs: after the
// grace period the request is abandoned and Run returns ErrInterrupted with
// the earlier rows committed.
func TestRebuildGracePeriod(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 6, 11), t.TempDir()
	spec := rbSpec(t, root)
	spec.Limits.Concurrency = 1
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fake := newRecordingFake(func(rctx context.Context, n int, _ *embedder.Request) error {
		if n == 3 {
			cancel()
			<-rctx.Done() // hangs until the grace period ends
			return rctx.Err()
		}
		return nil
	})
	sum, err := rbRun(t, ctx, fake, out, spec, func(rb *Rebuilder) { rb.GracePeriod = 10 * time.Millisecond })
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if sum.Stopped != "interrupted" || sum.LastError == "" {
		t.Errorf("summary: stopped %q, last error %q", sum.Stopped, sum.LastError)
	}
	if got, want := rowKeys(rbAllRows(t, out)), inputKeys(fake.succeeded()); !slices.Equal(got, want) || len(want) != 2*spec.Limits.BatchSize {
		t.Errorf("committed %d rows, want the %d of the two answered requests", len(got), len(want))
	}
}

// TestRebuildStopsWhenCommitsFail fails every part commit: the job stops
// with the store's error instead of paying for rows it cannot keep.
func TestRebuildStopsWhenCommitsFail(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 20, 12), t.TempDir()
	spec := rbSpec(t, root)
	diskFull := errors.New("no space left on device")
	store := &signalStore{Store: checkpoint.NewDir(out), failParts: diskFull}
	fake := newRecordingFake(nil)
	rb := &Rebuilder{Embedder: fake, Tokenizer: rbTokenizer(t), Store: store}
	sum, err := rb.Run(t.Context(), spec)
	if !errors.Is(err, diskFull) {
		t.Fatalf("err = %v, want the store's error", err)
	}
	if sum.Stopped != "error" || sum.CommittedChunks != 0 {
		t.Errorf("summary: stopped %q, committed %d; want error, 0", sum.Stopped, sum.CommittedChunks)
	}
	// The first commit is due after PartRows/BatchSize requests. It runs in
	// the background, so its failure is seen at the latest when the second
	// part is full; then at most the requests in flight and queued for the
	// writer are answered.
	limit := 2*spec.PartRows/spec.Limits.BatchSize + (spec.Limits.Concurrency + RowsQueue(spec.Limits.Concurrency)) + 1
	if fake.Calls() > limit || int64(fake.Calls()) >= sum.PlannedRequests {
		t.Errorf("%d requests after commits started failing (of %d planned), want at most %d", fake.Calls(), sum.PlannedRequests, limit)
	}
}

// TestRebuildBudgetBelowOneRequest stops before the first request when the
// budget cannot pay for it: nothing billed, nothing committed.
func TestRebuildBudgetBelowOneRequest(t *testing.T) {
	t.Parallel()
	root, out := rbCorpus(t, 4, 13), t.TempDir()
	spec := rbSpec(t, root)
	spec.Budget = 1 // one micro-dollar: a 8-chunk request costs more
	sim := rbSimulator(t)
	sum, err := rbRun(t, t.Context(), sim, out, spec)
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("err = %v, want ErrBudgetExceeded", err)
	}
	if led := sim.Ledger(); led.Totals.Requests != 0 || sum.Cost != 0 || sum.EmbeddedChunks != 0 {
		t.Errorf("%d requests, $%s spent, %d chunks; want none", led.Totals.Requests, sum.Cost, sum.EmbeddedChunks)
	}
	if !strings.Contains(cliText(err), "--budget-usd") {
		t.Errorf("error %q does not say how to resume", err)
	}
}

// TestRebuildShards runs a corpus as two shards into one root: each shard
// embeds only its documents, into its own directory, and together they
// cover the corpus once. A root first filled part way unsharded (stopped
// by its budget) is finished by the shards without paying twice.
func TestRebuildShards(t *testing.T) {
	t.Parallel()
	for _, prefilled := range []bool{false, true} {
		t.Run(fmt.Sprintf("prefilled=%v", prefilled), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			root, out := rbCorpus(t, 12, 14), t.TempDir()
			spec := rbSpec(t, root)
			sim := rbSimulator(t)
			if prefilled {
				s := spec
				s.Budget = 60
				if _, err := rbRun(t, ctx, sim, out, s); !errors.Is(err, ErrBudgetExceeded) {
					t.Fatalf("unsharded run with a budget: %v", err)
				}
			}
			before := len(rbAllRows(t, out))
			for i := range 2 {
				s := spec
				s.Shard = checkpoint.Shard{Index: i, Count: 2}
				if _, err := rbRun(t, ctx, sim, out, s); err != nil {
					t.Fatalf("shard %d/2: %v", i, err)
				}
			}
			for name, rows := range rbRows(t, out) {
				for _, r := range rows {
					if dir := filepath.Dir(name); dir != "." && dir != checkpoint.ShardDir(checkpoint.Shard{Index: checkpoint.ShardOf(r.DocID, 2), Count: 2}) {
						t.Errorf("row %s of shard %d is in %s", r.Key(), checkpoint.ShardOf(r.DocID, 2), name)
					}
				}
			}
			rep := rbVerify(t, out, spec)
			if !rep.Complete() || rep.Duplicates != 0 || rep.Extra != 0 {
				t.Errorf("Verify = %+v, want complete, each chunk once", rep)
			}
			if n := rbBilledTwice(sim.Ledger()); n != 0 {
				t.Errorf("%d chunks billed twice", n)
			}
			if prefilled && before == 0 {
				t.Error("the budget run committed nothing: the test proves nothing")
			}
		})
	}
}
