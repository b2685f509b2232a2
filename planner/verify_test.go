package planner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/reembed/reembed/checkpoint"
)

// rbComplete returns a corpus and a checkpoint of it made by a full rebuild.
func rbComplete(t *testing.T, docs int, seed uint64) (RebuildSpec, string) {
	t.Helper()
	root, out := rbCorpus(t, docs, seed), t.TempDir()
	spec := rbSpec(t, root)
	if _, err := rbRun(t, t.Context(), rbSimulator(t), out, spec); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return spec, out
}

func TestVerify(t *testing.T) {
	t.Parallel()
	t.Run("complete", func(t *testing.T) {
		t.Parallel()
		spec, out := rbComplete(t, 5, 20)
		rows := rbAllRows(t, out)
		rep := rbVerify(t, out, spec)
		want := checkpoint.Report{Expected: len(rows), Present: len(rows)}
		if !rep.Complete() || rep.Expected != want.Expected || rep.Present != want.Present || rep.Missing+rep.Stale+rep.Extra+rep.Duplicates+rep.Superseded+rep.UnreadableParts != 0 {
			t.Errorf("Verify = %+v, want %d present and nothing else", rep, len(rows))
		}
	})
	t.Run("part-deleted", func(t *testing.T) {
		t.Parallel()
		spec, out := rbComplete(t, 5, 21)
		parts := rbRows(t, out)
		const victim = "part-000001.parquet"
		gone := parts[victim]
		if err := os.Remove(filepath.Join(out, victim)); err != nil {
			t.Fatal(err)
		}
		rep := rbVerify(t, out, spec)
		if rep.Complete() || rep.Missing != len(gone) || rep.Present != rep.Expected-len(gone) {
			t.Errorf("Verify = %+v, want %d missing", rep, len(gone))
		}
		wantKey := gone[0].Key()
		found := false
		for _, k := range rep.MissingKeys {
			found = found || k == wantKey
		}
		if !found {
			t.Errorf("MissingKeys %v does not list %s, the first row of the deleted part", rep.MissingKeys, wantKey)
		}
	})
	t.Run("document-removed", func(t *testing.T) {
		t.Parallel()
		spec, out := rbComplete(t, 5, 22)
		var removed int
		for _, r := range rbAllRows(t, out) {
			if r.DocID == "doc-002.txt" {
				removed++
			}
		}
		if err := os.Remove(filepath.Join(spec.Paths[0], "doc-002.txt")); err != nil {
			t.Fatal(err)
		}
		rep := rbVerify(t, out, spec)
		if !rep.Complete() || rep.Extra != removed || removed == 0 {
			t.Errorf("Verify = %+v, want complete with the %d chunks of the removed document extra", rep, removed)
		}
		for _, k := range rep.ExtraKeys {
			if k.DocID != "doc-002.txt" {
				t.Errorf("extra key %s is not of the removed document", k)
			}
		}
	})
	t.Run("document-changed", func(t *testing.T) {
		t.Parallel()
		spec, out := rbComplete(t, 5, 23)
		path := filepath.Join(spec.Paths[0], "doc-001.txt")
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text[0] ^= 0x20 // flip the case of the first letter: the first chunk changes
		if err := os.WriteFile(path, text, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := rbVerify(t, out, spec)
		if rep.Complete() || rep.Stale == 0 || rep.Missing != 0 {
			t.Errorf("Verify = %+v, want stale chunks", rep)
		}
		if len(rep.StaleKeys) == 0 || rep.StaleKeys[0] != (checkpoint.Key{DocID: "doc-001.txt", ChunkIndex: 0}) {
			t.Errorf("StaleKeys = %v, want doc-001.txt#0 first", rep.StaleKeys)
		}
	})
	t.Run("no-checkpoint", func(t *testing.T) {
		t.Parallel()
		spec := rbSpec(t, rbCorpus(t, 1, 24))
		_, err := Verify(t.Context(), rbTokenizer(t), checkpoint.NewDir(filepath.Join(t.TempDir(), "absent")), spec)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want one wrapping fs.ErrNotExist", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		spec, out := rbComplete(t, 3, 25)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Verify(ctx, rbTokenizer(t), checkpoint.NewDir(out), spec); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// TestCheckpointDone checks that the estimate's Done reports exactly the
// chunks checkpointed with the same text.
func TestCheckpointDone(t *testing.T) {
	t.Parallel()
	spec, out := rbComplete(t, 3, 26)
	done, err := CheckpointDone(t.Context(), checkpoint.NewDir(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rbAllRows(t, out) {
		if !done(r.DocID, int(r.ChunkIndex), []byte(r.Text)) {
			t.Fatalf("Done(%s) = false for a checkpointed chunk", r.Key())
		}
		if done(r.DocID, int(r.ChunkIndex), []byte(r.Text+" changed")) {
			t.Fatalf("Done(%s) = true for changed text", r.Key())
		}
	}
	if done("doc-999.txt", 0, []byte("x")) {
		t.Error("Done = true for a chunk never checkpointed")
	}
	est := spec.estimateRequest()
	est.Done = done
	res, err := Run(t.Context(), rbTokenizer(t), est)
	if err != nil {
		t.Fatal(err)
	}
	if me := res.Estimates[0]; me.Chunks != 0 || me.CostUSD != 0 || me.ReusedChunks != int64(len(rbAllRows(t, out))) {
		t.Errorf("estimate of a complete checkpoint: %d chunks, $%s, %d reused; want 0, $0, all", me.Chunks, me.CostUSD, me.ReusedChunks)
	}
}
