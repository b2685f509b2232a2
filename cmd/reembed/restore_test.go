package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store/pgvector/pgtest"
	"github.com/reembed/reembed/store/storetest"
)

// sameAsCheckpoint fails unless the table holds exactly the checkpoint's winning rows.
func sameAsCheckpoint(t *testing.T, dsn, table string, want map[checkpoint.Key]checkpoint.Row) {
	t.Helper()
	got := pgtest.Rows(t, dsn, table)
	if len(got) != len(want) {
		t.Errorf("%s has %d rows, the checkpoint %d keys", table, len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.ChunkSHA256 != w.ChunkSHA256 || !slices.Equal(g.Embedding, w.Embedding) || g.Text != w.Text {
			if bad++; bad <= 5 {
				t.Errorf("row %s: present %v, sha %s (want %s), vector equal %v", k, ok, g.ChunkSHA256, w.ChunkSHA256, slices.Equal(g.Embedding, w.Embedding))
			}
		}
	}
}

// TestRestoreSurvivesSIGKILL kills a restore (a child process) at random
// moments, resumes it each time, and checks that the finished table holds
// every checkpoint row exactly once with its sha256 and vector. The number
// of kills is REEMBED_RESTORE_KILLS (default 20; scripts/soak-restore.sh runs 200).
func TestRestoreSurvivesSIGKILL(t *testing.T) {
	kills := 20
	if n, err := strconv.Atoi(os.Getenv("REEMBED_RESTORE_KILLS")); err == nil && n > 0 {
		kills = n
	}
	srv := pgtest.New(t)
	bin := buildReembed(t)
	dir := t.TempDir()
	want := storetest.Checkpoint(t, dir, 1000, 64, 30)
	var outputs bytes.Buffer
	restoreCmd := func(dsn string) *exec.Cmd {
		c := exec.Command(bin, "restore", "--checkpoint", dir, "--to", dsn, "--table", "kill_me", "--format", "json")
		c.Stdout, c.Stderr = &outputs, &outputs
		return c
	}
	// One uninterrupted run times the window the kills fall in.
	start := time.Now()
	if err := restoreCmd(srv.DB(t)).Run(); err != nil {
		t.Fatalf("uninterrupted restore: %v\n%s", err, outputs.String())
	}
	window := time.Since(start)
	dsn := srv.DB(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d, window %s, %d kills", seed, window, kills)
	killed := 0
	for i := 0; i < kills; i++ {
		c := restoreCmd(dsn)
		started := time.Now()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(window))))
		c.Process.Signal(syscall.SIGKILL)
		if err := c.Wait(); err != nil {
			killed++
		} else {
			// Finished before the kill: the window was too long. Shrink it
			// and start over from an empty database, so that later kills
			// land in the load, the index build or the swap.
			window = max(time.Since(started)*4/5, 10*time.Millisecond)
			dsn = resetAndCheck(t, srv, dsn, want)
		}
	}
	if err := restoreCmd(dsn).Run(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, outputs.String())
	}
	t.Logf("%d of %d runs killed before they finished", killed, kills)
	if killed == 0 {
		t.Error("no run was killed before it finished: the resume was not exercised")
	}
	sameAsCheckpoint(t, dsn, "kill_me", want)
	if strings.Contains(outputs.String(), pgtest.Password) {
		t.Error("a restore printed the DSN password")
	}
}

// resetAndCheck checks a finished restore and returns a fresh database.
func resetAndCheck(t *testing.T, srv *pgtest.Server, dsn string, want map[checkpoint.Key]checkpoint.Row) string {
	t.Helper()
	sameAsCheckpoint(t, dsn, "kill_me", want)
	return srv.DB(t)
}

func TestRestoreCommand(t *testing.T) {
	dsn := pgtest.New(t).DB(t)
	dir := t.TempDir()
	want := storetest.Checkpoint(t, dir, 120, 16, 50)
	code, out, errOut := runMain(t, "restore", "--checkpoint", dir, "--to", dsn, "--format", "json", "--max-index-memory", "64MB", "--parallel-workers", "0")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Keys        int `json:"keys"`
		PartsLoaded int `json:"parts_loaded"`
		IndexPlan   struct {
			EstimatedBytes int64 `json:"EstimatedBytes"`
		} `json:"index_plan"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Keys != 120 || rep.IndexPlan.EstimatedBytes == 0 {
		t.Errorf("report %+v (%v):\n%s", rep, err, out)
	}
	sameAsCheckpoint(t, dsn, "reembed_chunks", want)
	all := out + errOut
	// Every failure path prints no password.
	for _, args := range [][]string{
		{"restore", "--checkpoint", dir, "--to", dsn, "--table", "reembed_chunks", "--swap", "--append"},
		{"restore", "--checkpoint", dir, "--to", strings.Replace(dsn, pgtest.Password, pgtest.Password+"-wrong", 1)},
		{"restore", "--checkpoint", dir, "--to", "postgres://u:" + pgtest.Password + "@127.0.0.1:1/db?connect_timeout=2"},
		{"restore", "--checkpoint", dir, "--to", "postgres://u:" + pgtest.Password + "@[::1/db"},
		{"restore", "--checkpoint", t.TempDir(), "--to", dsn},
		{"restore", "--checkpoint", dir, "--to", dsn, "--index", "bogus"},
		{"restore", "--checkpoint", dir, "--to", dsn, "--max-index-memory", "lots"},
	} {
		code, out, errOut := runMain(t, args...)
		if code == exitOK {
			t.Errorf("%q: exit 0", args[5:])
		}
		all += out + errOut
	}
	exec := func(sql string) {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	// verify --store: exit 0 on the restored table, 4 once a row is gone or changed.
	code, out, errOut = runMain(t, "verify", "--checkpoint", dir, "--store", dsn, "--format", "json", "--sample", "500")
	var vr struct {
		Complete       bool    `json:"complete"`
		Present        int     `json:"present"`
		VectorsSampled int     `json:"vectors_sampled"`
		IndexQueries   int     `json:"index_queries"`
		RecallAt1      float64 `json:"recall_at_1"`
	}
	if err := json.Unmarshal([]byte(out), &vr); code != exitOK || err != nil || !vr.Complete || vr.Present != 120 || vr.VectorsSampled != 120 || vr.IndexQueries != 20 || vr.RecallAt1 < 0.9 {
		t.Errorf("verify --store of the restored table: exit %d, %+v (%v)\n%s%s", code, vr, err, out, errOut)
	}
	all += out + errOut
	exec("DELETE FROM reembed_chunks WHERE chunk_index = 0 AND doc_id = 'docs/doc-0000.md'")
	exec("UPDATE reembed_chunks SET embedding = embedding + array_fill(0.25, ARRAY[16])::vector WHERE chunk_index = 1 AND doc_id = 'docs/doc-0000.md'")
	code, out, errOut = runMain(t, "verify", "--checkpoint", dir, "--store", dsn, "--sample", "500")
	if code != exitIncomplete || !strings.Contains(out, "1 missing") || !strings.Contains(out, "1 differ") || !strings.Contains(out, "vector differs: docs/doc-0000.md#1") {
		t.Errorf("verify --store of a damaged table: exit %d\n%s%s", code, out, errOut)
	}
	all += out + errOut
	code, out, errOut = runMain(t, "verify", "--checkpoint", dir, "--store", strings.Replace(dsn, pgtest.Password, "nope", 1))
	if code != exitError {
		t.Errorf("verify --store with a wrong password: exit %d", code)
	}
	all += out + errOut

	exec("CREATE TABLE other (doc_id text PRIMARY KEY)")
	code, out, errOut = runMain(t, "restore", "--checkpoint", dir, "--to", dsn, "--table", "other", "--append")
	if code != exitUsage || !strings.Contains(errOut, "column chunk_index is missing") {
		t.Errorf("append into a foreign table: exit %d, %s", code, errOut)
	}
	all += out + errOut
	if strings.Contains(all, pgtest.Password) {
		t.Errorf("output holds the password:\n%s", all)
	}
}

// TestRestoreKilledDuringIndexBuild kills a restore while PostgreSQL builds
// its index (seen in pg_stat_progress_create_index), then checks what a
// user relies on: the server ends the orphaned build (no session keeps
// building for a dead client), queries never saw the half-done table (the
// target does not exist yet), and a resume builds the index and swaps in
// every row exactly once.
func TestRestoreKilledDuringIndexBuild(t *testing.T) {
	srv := pgtest.New(t)
	bin := buildReembed(t)
	dir := t.TempDir()
	// An HNSW build of several seconds here: longer than the server takes
	// to notice a dead client (client_connection_check_interval, 1 s) on a
	// machine a few times faster.
	want := storetest.Checkpoint(t, dir, 10000, 384, 1000)
	dsn := srv.DB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	building := func() int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_progress_create_index p
			JOIN pg_class c ON c.oid = p.relid WHERE c.relname = 'killed_idx_reembed_load'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var out bytes.Buffer
	restore := func() *exec.Cmd {
		c := exec.Command(bin, "restore", "--checkpoint", dir, "--to", dsn, "--table", "killed_idx", "--parallel-workers", "0")
		c.Stdout, c.Stderr = &out, &out
		return c
	}
	c := restore()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	for start := time.Now(); building() == 0; time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("the restore ended (%v) before its index build was seen in pg_stat_progress_create_index:\n%s", err, out.String())
		default:
		}
		if time.Since(start) > time.Minute {
			t.Fatal("no index build seen in a minute")
		}
	}
	c.Process.Signal(syscall.SIGKILL)
	<-exited
	killed := time.Now()
	// The server notices the dead client (client_connection_check_interval)
	// and ends its build; give it a generous minute on a loaded machine.
	for building() > 0 {
		if time.Since(killed) > time.Minute {
			t.Fatal("the index build of a killed restore still runs a minute later")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the orphaned build ended %s after the kill", time.Since(killed).Round(time.Millisecond))
	var target, index *string
	err = conn.QueryRow(ctx, `SELECT to_regclass('killed_idx')::text, (SELECT min(indexrelid::regclass::text) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
		WHERE i.indrelid = 'killed_idx_reembed_load'::regclass AND a.amname = 'hnsw')`).Scan(&target, &index)
	if err != nil {
		t.Fatal(err)
	}
	if target != nil {
		t.Fatal("the target table exists after a restore killed before its swap: queries saw it half-done")
	}
	if index != nil {
		t.Fatalf("index %s exists after the kill: the server finished the orphaned build instead of ending it", *index)
	}
	resumed := time.Now()
	if err := restore().Run(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	t.Logf("the resume (the whole index build, then the swap) took %s", time.Since(resumed).Round(time.Millisecond))
	sameAsCheckpoint(t, dsn, "killed_idx", want)
	var indexes int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
		WHERE i.indrelid = 'killed_idx'::regclass AND a.amname = 'hnsw' AND i.indisvalid`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != 1 {
		t.Errorf("%d valid HNSW indexes on the restored table, want 1", indexes)
	}
}
