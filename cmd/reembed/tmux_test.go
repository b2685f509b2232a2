package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// watchInTmux runs the shell command cmd in a real terminal of width
// columns (a detached tmux session on a server of its own, -L: no race with
// another test's server exiting, and the user's sessions are not touched),
// captures the screen every interval and hands each running screen to look,
// until cmd has ended or time is out. It returns the last screen, the one
// cmd left; the test fails when cmd did not end. It skips without tmux.
func watchInTmux(t *testing.T, width int, cmd string, every, timeout time.Duration, look func(screen string)) string {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux)")
	}
	session := fmt.Sprintf("reembed-test-%d-%d", width, time.Now().UnixNano())
	if b, err := exec.Command(tmux, "-L", session, "new-session", "-d", "-s", session, "-x", fmt.Sprint(width), "-y", "50",
		cmd+"; echo DONE; sleep 60").CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, b)
	}
	defer exec.Command(tmux, "-L", session, "kill-server").Run()
	var screen string
	for end := time.Now().Add(timeout); time.Now().Before(end); {
		time.Sleep(every)
		b, _ := exec.Command(tmux, "-L", session, "capture-pane", "-p", "-t", session).Output()
		if screen = string(b); strings.Contains(screen, "DONE") {
			return screen
		}
		look(screen)
	}
	t.Fatalf("%q did not end in %s:\n%s", cmd, timeout, screen)
	return screen
}
