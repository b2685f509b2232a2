package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/store/pgvector/pgtest"
)

// queryInt runs a one-number query on dsn.
func queryInt(t *testing.T, dsn, sql string, args ...any) int64 {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Issue 15.4: drill --restore-to runs estimate (calibrated), the killed and
// resumed rebuild, restore and verify --store, and reports predicted against
// actual for embed, load, index and verify; its own table is dropped after.
func TestDrillRestoreTo(t *testing.T) {
	dsn := pgtest.New(t).DB(t)
	bin := buildReembed(t)
	cmd := exec.Command(bin, "drill", "--restore-to", dsn, "--calibrate", "--calibrate-rows", "200,400", "--format", "json", "--quiet")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("drill --restore-to: %v\n%s\n%s", err, out, stderr.String())
	}
	if strings.Contains(string(out)+stderr.String(), pgtest.Password) {
		t.Errorf("the drill printed the DSN password:\n%s\n%s", out, stderr.String())
	}
	var res drillResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, out)
	}
	t.Logf("drill --restore-to --calibrate:\n%s", stderr.String())
	r := res.Restore
	if !res.Passed || r == nil || r.Error != "" || !r.Calibrated || !strings.HasPrefix(r.Basis, "calibrated") || r.Index != "hnsw" {
		t.Fatalf("drill result = %+v, restore %+v", res, r)
	}
	if r.Rows != res.Actual.Chunks || r.Verify == nil || !r.Verify.Complete() || int64(r.Verify.Present) != res.Actual.Chunks ||
		r.Verify.IndexQueries != 20 || r.Verify.RecallAt1 < 0.9 {
		t.Errorf("restore %+v, verify %+v, want every one of %d chunks", r, r.Verify, res.Actual.Chunks)
	}
	var names []string
	for _, term := range r.Terms {
		names = append(names, term.Term)
		if term.PredictedSeconds <= 0 || term.ActualSeconds <= 0 {
			t.Errorf("term %+v: want predicted and actual seconds", term)
		}
	}
	if strings.Join(names, ",") != "embed,load,index,verify,total" {
		t.Errorf("terms %q", names)
	}
	if got := r.Terms[0]; got.ActualSeconds != res.Actual.DurationSeconds || got.PredictedSeconds != res.Predicted.DurationSeconds {
		t.Errorf("embed term %+v, the rebuild's duration predicted %v actual %v", got, res.Predicted.DurationSeconds, res.Actual.DurationSeconds)
	}
	if n := queryInt(t, dsn, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'reembed_drill_%'"); n != 0 {
		t.Errorf("%d drill tables left behind", n)
	}
	if n := queryInt(t, dsn, "SELECT count(*) FROM reembed_restore_ledger"); n != 0 {
		t.Errorf("%d ledger rows left behind", n)
	}
}

// With --keep the drill leaves its table; the table view prints a line per
// term; a table the user names is never dropped, and a restore the store
// refuses fails the drill (exit 5).
func TestDrillRestoreToTableAndFailure(t *testing.T) {
	dsn := pgtest.New(t).DB(t)
	bin := buildReembed(t)
	out, err := exec.Command(bin, "drill", "--restore-to", dsn, "--restore-index", "ivfflat", "--keep", "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("drill --restore-to --keep: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`Drill directory: (\S+)`).FindSubmatch(out); m != nil {
		t.Cleanup(func() { os.RemoveAll(string(m[1])) })
	}
	text := string(out)
	t.Logf("drill --restore-to --restore-index ivfflat:\n%s", text)
	for _, term := range []string{"embed", "load", "index", "verify", "total"} {
		if !regexp.MustCompile(`(?m)^` + term + ` +[0-9.]+s +[0-9.]+s +[-+][0-9]+%$`).MatchString(text) {
			t.Errorf("no %s line with predicted, actual and error:\n%s", term, text)
		}
	}
	table := regexp.MustCompile(`Restore into (reembed_drill_[0-9a-f]+): (\d+) rows, ivfflat index \(uncalibrated`).FindStringSubmatch(text)
	if table == nil || !strings.Contains(text, "Drill PASSED") || strings.Contains(text, pgtest.Password) {
		t.Fatalf("output:\n%s", text)
	}
	if n := queryInt(t, dsn, "SELECT count(*) FROM "+table[1]); n == 0 || n != queryInt(t, dsn, "SELECT $1::bigint", table[2]) {
		t.Errorf("--keep: table %s holds %d rows, the drill said %s", table[1], n, table[2])
	}

	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE TABLE mine (doc_id text PRIMARY KEY); INSERT INTO mine VALUES ('precious')"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "drill", "--restore-to", dsn, "--restore-table", "mine", "--quiet")
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exitDrill || !strings.Contains(string(out), "Restore into mine FAILED") || strings.Contains(string(out), pgtest.Password) {
		t.Errorf("drill into a foreign table: %v, want exit %d and the restore's failure\n%s", err, exitDrill, out)
	}
	if n := queryInt(t, dsn, "SELECT count(*) FROM mine"); n != 1 {
		t.Errorf("the drill changed the user's table: %d rows", n)
	}
}

// The --restore-to flags are checked before anything runs, and a server
// that cannot be reached fails before the rebuild, without the password.
func TestDrillRestoreFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--calibrate"}, exitUsage, "--calibrate needs --restore-to"},
		{[]string{"--restore-to", "nonsense"}, exitUsage, "want a postgres:// URL"},
		{[]string{"--restore-to", "postgres://u@127.0.0.1/db", "--mode", "batch"}, exitUsage, "--mode sync only"},
		{[]string{"--restore-to", "postgres://u@127.0.0.1/db", "--restore-index", "flat"}, exitUsage, "--restore-index"},
		{[]string{"--restore-to", "postgres://u:" + pgtest.Password + "@127.0.0.1:1/db?connect_timeout=2"}, exitError, "--restore-to"},
	} {
		code, stdout, stderr := runMain(t, append([]string{"drill"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Contains(stdout+stderr, pgtest.Password) || strings.Contains(stdout, "Killed the rebuild") {
			t.Errorf("drill %q: exit %d, want %d and %q\n%s\n%s", c.args, code, c.code, c.want, stdout, stderr)
		}
	}
}
