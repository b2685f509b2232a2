package pgvector_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/field"
	"github.com/reembed/reembed/store"
	"github.com/reembed/reembed/store/pgvector"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// restore restores the checkpoint in dir into table of dsn.
func restore(t *testing.T, dsn, dir, table string, mode pgvector.Mode, opts store.Options) (store.Report, error) {
	t.Helper()
	ctx := t.Context()
	sink, err := pgvector.Open(ctx, pgvector.Config{DSN: dsn, Table: table, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)
	src := checkpoint.NewDir(dir)
	m, err := checkpoint.ReadManifest(ctx, src, checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	return store.Restore(ctx, src, m, sink, opts)
}

func tableRows(t *testing.T, dsn, table string) map[checkpoint.Key]checkpoint.Row {
	return pgtest.Rows(t, dsn, table)
}

// exec runs SQL on dsn.
func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	if _, err := c.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func query[T any](t *testing.T, dsn, sql string, args ...any) T {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var v T
	if err := c.QueryRow(t.Context(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// sameRows fails unless got holds exactly want's rows (vectors mapped by round).
func sameRows(t *testing.T, got, want map[checkpoint.Key]checkpoint.Row, round func(float32) float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("table has %d rows, checkpoint %d keys", len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		wv := slices.Clone(w.Embedding)
		for i := range wv {
			wv[i] = round(wv[i])
		}
		if !ok || g.ChunkSHA256 != w.ChunkSHA256 || g.Text != w.Text || g.Model != w.Model ||
			!g.EmbeddedAt.Equal(w.EmbeddedAt) || !slices.Equal(g.Embedding, wv) {
			if bad++; bad < 5 {
				t.Errorf("row %s: got present=%v sha %s text %q at %v; want sha %s text %q at %v (vectors equal: %v)",
					k, ok, g.ChunkSHA256, g.Text, g.EmbeddedAt, w.ChunkSHA256, w.Text, w.EmbeddedAt, slices.Equal(g.Embedding, wv))
			}
		}
	}
}

func same(f float32) float32 { return f }

func TestRestoreNewTableSwapsInIndexedRows(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	want := storetest.Checkpoint(t, dir, 400, 64, 37)
	var phases []string
	rep, err := restore(t, dsn, dir, "chunks", pgvector.ModeAuto, store.Options{Progress: func(p store.Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != int64(len(want)) || rep.PartsSkipped != 0 || rep.Keys != len(want) {
		t.Errorf("report %+v: want %d rows loaded, none skipped", rep, len(want))
	}
	sameRows(t, tableRows(t, dsn, "chunks"), want, same)
	if !slices.Equal(phases, []string{"load", "swap"}) && !slices.Equal(phases, []string{"load", "index", "swap"}) {
		t.Errorf("progress phases %v", phases)
	}
	if n := query[int](t, dsn, "SELECT count(*) FROM pg_indexes WHERE tablename = 'chunks' AND indexdef LIKE '%USING hnsw (embedding vector_cosine_ops)%' AND indexname = 'chunks_embedding_idx'"); n != 1 {
		t.Errorf("%d HNSW cosine indexes named chunks_embedding_idx on chunks, want 1", n)
	}
	if ok := query[bool](t, dsn, "SELECT to_regclass('chunks_reembed_load') IS NULL"); !ok {
		t.Error("the load table is still there after the swap")
	}
	// A second run finds every part in the ledger and loads nothing.
	rep, err = restore(t, dsn, dir, "chunks", pgvector.ModeAuto, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PartsLoaded != 0 || rep.PartsSkipped != rep.Parts {
		t.Errorf("second run: %+v, want every part skipped", rep)
	}
	sameRows(t, tableRows(t, dsn, "chunks"), want, same)
}

func TestRestoreWideVectorsAsHalfvec(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	want := storetest.Checkpoint(t, dir, 30, 3072, 10)
	if _, err := restore(t, dsn, dir, "big", pgvector.ModeAuto, store.Options{Index: store.IndexOptions{Kind: "ivfflat"}}); err != nil {
		t.Fatal(err)
	}
	if typ := query[string](t, dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'big'::regclass AND attname = 'embedding'"); typ != "halfvec(3072)" {
		t.Errorf("embedding column is %s, want halfvec(3072)", typ)
	}
	sameRows(t, tableRows(t, dsn, "big"), want, func(f float32) float32 { return pgvector.Float32(pgvector.Float16(f)) })
	if n := query[int](t, dsn, "SELECT count(*) FROM pg_indexes WHERE tablename = 'big' AND indexdef LIKE '%ivfflat (embedding halfvec_cosine_ops)%'"); n != 1 {
		t.Errorf("%d ivfflat halfvec cosine indexes, want 1", n)
	}
}

func TestRestoreRefusesMismatchedOrForeignTable(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	storetest.Checkpoint(t, dir, 20, 16, 10)
	exec(t, dsn, "CREATE EXTENSION vector; CREATE TABLE wrongdims (doc_id text, chunk_index int, chunk_sha256 text, text text, model text, embedded_at timestamptz, embedding vector(8), PRIMARY KEY (doc_id, chunk_index))")
	_, err := restore(t, dsn, dir, "wrongdims", pgvector.ModeAppend, store.Options{})
	if !errors.Is(err, pgvector.ErrTableMismatch) || !strings.Contains(err.Error(), "column embedding is vector(8), want vector(16)") {
		t.Errorf("append into vector(8): %v, want a mismatch naming the column", err)
	}
	exec(t, dsn, "CREATE TABLE nokey (doc_id text, chunk_index int, chunk_sha256 text, text text, model text, embedded_at timestamptz, embedding vector(16))")
	_, err = restore(t, dsn, dir, "nokey", pgvector.ModeAppend, store.Options{})
	if !errors.Is(err, pgvector.ErrTableMismatch) || !strings.Contains(err.Error(), "no primary key") {
		t.Errorf("append into a table without a key: %v", err)
	}
	exec(t, dsn, "CREATE TABLE foreign_ok (doc_id text, chunk_index int, chunk_sha256 text, text text, model text, embedded_at timestamptz, embedding vector(16), PRIMARY KEY (doc_id, chunk_index))")
	_, err = restore(t, dsn, dir, "foreign_ok", pgvector.ModeAuto, store.Options{})
	if !errors.Is(err, pgvector.ErrTableExists) || !strings.Contains(field.Render(err, func(f string) string { return "--" + f }), "--swap") {
		t.Errorf("default mode into an existing table: %v, want ErrTableExists naming --swap", err)
	}
	if n := query[int](t, dsn, "SELECT count(*) FROM foreign_ok"); n != 0 {
		t.Errorf("a refused restore wrote %d rows", n)
	}
}

func TestRestoreAppendDeltaUpdatesAndSwapReplaces(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	want := storetest.Checkpoint(t, dir, 100, 16, 25)
	if _, err := restore(t, dsn, dir, "delta", pgvector.ModeAuto, store.Options{}); err != nil {
		t.Fatal(err)
	}
	// The rebuild adds parts: new keys and a changed text for old ones.
	ctx := context.Background()
	w, err := checkpoint.Open(ctx, checkpoint.NewDir(dir), checkpoint.Options{Manifest: mustManifest(t, dir), PartRows: 25})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []checkpoint.Key{{DocID: "docs/doc-0001.md", ChunkIndex: 0}, {DocID: "new.md", ChunkIndex: 0}, {DocID: "new.md", ChunkIndex: 1}} {
		r := storetest.NewRow(k.DocID, k.ChunkIndex, "changed "+string(rune('a'+i)), 16)
		want[k] = r
		if err := w.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := restore(t, dsn, dir, "delta", pgvector.ModeAuto, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PartsLoaded != 1 || rep.Rows != 3 {
		t.Errorf("delta: %+v, want 1 part of 3 rows", rep)
	}
	sameRows(t, tableRows(t, dsn, "delta"), want, same)

	// A swap from another checkpoint replaces the table's rows entirely.
	other := t.TempDir()
	want2 := storetest.Checkpoint(t, other, 10, 16, 25)
	if _, err := restore(t, dsn, other, "delta", pgvector.ModeSwap, store.Options{}); err != nil {
		t.Fatal(err)
	}
	sameRows(t, tableRows(t, dsn, "delta"), want2, same)
}

func mustManifest(t *testing.T, dir string) checkpoint.Manifest {
	m, err := checkpoint.ReadManifest(t.Context(), checkpoint.NewDir(dir), checkpoint.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestVerifyFindsEveryKindOfDamage(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	storetest.Checkpoint(t, dir, 200, 32, 50)
	if _, err := restore(t, dsn, dir, "v", pgvector.ModeAuto, store.Options{}); err != nil {
		t.Fatal(err)
	}
	check := func() store.VerifyReport {
		sink, err := pgvector.Open(t.Context(), pgvector.Config{DSN: dsn, Table: "v"})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close(t.Context())
		if err := sink.Attach(t.Context(), "cosine"); err != nil {
			t.Fatal(err)
		}
		rep, err := store.Verify(t.Context(), checkpoint.NewDir(dir), sink, store.VerifyOptions{Sample: 1000, IndexQueries: 30, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check()
	if !rep.Complete() || rep.Present != 200 || rep.VectorsSampled != 200 || rep.IndexQueries != 30 || rep.RecallAt1 < 0.9 {
		t.Fatalf("intact table: %+v", rep)
	}
	exec(t, dsn, "DELETE FROM v WHERE doc_id = 'docs/doc-0000.md' AND chunk_index = 1")
	exec(t, dsn, "UPDATE v SET chunk_sha256 = repeat('0', 64) WHERE doc_id = 'docs/doc-0000.md' AND chunk_index = 2")
	exec(t, dsn, "UPDATE v SET embedding = embedding + array_fill(0.5, ARRAY[32])::vector WHERE doc_id = 'docs/doc-0001.md' AND chunk_index = 0")
	exec(t, dsn, "INSERT INTO v SELECT 'extra.md', 0, chunk_sha256, text, model, embedded_at, embedding FROM v LIMIT 1")
	rep = check()
	if rep.Complete() || rep.Missing != 1 || rep.Stale != 1 || rep.Extra != 1 || rep.VectorsDiffering != 1 ||
		rep.DifferingKeys[0] != (checkpoint.Key{DocID: "docs/doc-0001.md", ChunkIndex: 0}) {
		t.Errorf("damaged table: %+v, want 1 missing, 1 stale, 1 extra, 1 differing vector", rep)
	}
}

func TestPasswordNeverInErrors(t *testing.T) {
	dsn := pgtest.DSN(t)
	bad := strings.Replace(dsn, pgtest.Password, pgtest.Password+"x", 1)
	_, err := pgvector.Open(t.Context(), pgvector.Config{DSN: bad})
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if strings.Contains(err.Error(), pgtest.Password) {
		t.Errorf("error holds the password: %v", err)
	}
	for _, d := range []string{"postgres://u:" + pgtest.Password + "@127.0.0.1:1/x?connect_timeout=abc", "host=127.0.0.1 port=1 password=" + pgtest.Password + " sslmode=bogus"} {
		_, err := pgvector.Open(t.Context(), pgvector.Config{DSN: d})
		if err == nil || strings.Contains(err.Error(), pgtest.Password) {
			t.Errorf("DSN %q: error %v", pgvector.Redact(d), err)
		}
		if strings.Contains(pgvector.Redact(d), pgtest.Password) {
			t.Errorf("Redact(%q) keeps the password", d)
		}
	}
}

// TestIndexMemoryCheckedBeforeTheBuild: with a maintenance_work_mem too small
// for the graph, the restore warns before the build; with --max-index-memory
// room it raises maintenance_work_mem and pgvector never reports the slow path.
func TestIndexMemoryCheckedBeforeTheBuild(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	storetest.Checkpoint(t, dir, 300, 1536, 100)
	src := checkpoint.NewDir(dir)
	m := mustManifest(t, dir)
	run := func(table string, opts store.IndexOptions) ([]string, pgvector.IndexPlan) {
		var notices []string
		sink, err := pgvector.Open(t.Context(), pgvector.Config{DSN: dsn, Table: table, Notice: func(s string) { notices = append(notices, s) },
			FieldName: func(f string) string { return "--" + strings.ReplaceAll(f, "_", "-") }})
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close(t.Context())
		if _, err := store.Restore(t.Context(), src, m, sink, store.Options{Index: opts}); err != nil {
			t.Fatal(err)
		}
		return notices, sink.LastPlan
	}
	notices, plan := run("small_mem", store.IndexOptions{MaintenanceWorkMem: 1 << 20, ParallelWorkers: 0})
	joined := strings.Join(notices, "\n")
	if plan.Fits || !strings.Contains(joined, "needs about 2.0 MB but maintenance_work_mem is 1.0 MB") || !strings.Contains(joined, "no longer fits") {
		t.Errorf("1 MB for 300 rows × 1536: plan %+v, notices:\n%s", plan, joined)
	}
	if !strings.Contains(joined, "raise --max-index-memory (or --maintenance-work-mem), or use --index ivfflat") {
		t.Errorf("the warning does not name the settings as Config.FieldName does:\n%s", joined)
	}
	if i, j := strings.Index(joined, "needs about"), strings.Index(joined, "no longer fits"); i > j {
		t.Errorf("the warning came after pgvector's notice:\n%s", joined)
	}
	notices, plan = run("raised_mem", store.IndexOptions{MaintenanceWorkMem: 1 << 20, MaxIndexMemory: 64 << 20, ParallelWorkers: 0})
	joined = strings.Join(notices, "\n")
	if !plan.Fits || !plan.Raised || strings.Contains(joined, "no longer fits") {
		t.Errorf("raised within 64 MB: plan %+v, notices:\n%s", plan, joined)
	}
}

func TestPlanIndex(t *testing.T) {
	per := pgvector.HNSWBytesPerRow(1536, 16, false)
	for _, c := range []struct {
		name       string
		opts       store.IndexOptions
		wantMem    int64
		fits, rais bool
	}{
		{"ServerDefaultTooSmall", store.IndexOptions{}, 64 << 20, false, false},
		{"RaisedToFit", store.IndexOptions{MaxIndexMemory: 8 << 30}, 100_000*per + 100_000*per/10 + 1<<20, true, true},
		{"RaisedButCapped", store.IndexOptions{MaxIndexMemory: 256 << 20}, 256 << 20, false, true},
		{"IVFFlatNeedsNoGraph", store.IndexOptions{Kind: "ivfflat"}, 64 << 20, true, false},
		{"ExplicitMemFits", store.IndexOptions{MaintenanceWorkMem: 1 << 30}, 1 << 30, true, false},
	} {
		p := pgvector.PlanIndex(100_000, 1536, false, 64<<20, c.opts)
		if p.WorkMem != c.wantMem || p.Fits != c.fits || p.Raised != c.rais {
			t.Errorf("%s: %+v, want work mem %d fits %v raised %v", c.name, p, c.wantMem, c.fits, c.rais)
		}
	}
}
