package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// An idle xhttpd costs almost nothing in interrupt and hybrid mode, and a
// core per queue in busy mode: CPU time from /proc/PID/stat over 10 s with
// no traffic. The three run side by side, each on its own testbed.
func TestIdleCPU(t *testing.T) {
	testbedtest.RequireRoot(t)
	const window = 10 * time.Second
	for _, c := range []struct {
		mode     string
		min, max float64 // share of one core
	}{
		{"interrupt", 0, 0.02},
		{"hybrid", 0, 0.02},
		{"busy", 0.8, 1.2},
	} {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			_, _, srv := serve(t, "-mode", c.mode)
			pid := srv.Cmd.Process.Pid
			time.Sleep(time.Second) // let start-up work settle
			share, err := testbed.CPUShare(context.Background(), pid, window)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.1f%% of a core while idle", c.mode, 100*share)
			if share < c.min || share > c.max {
				t.Errorf("%s mode used %.1f%% of a core while idle; want %.0f%% to %.0f%%", c.mode, 100*share, 100*c.min, 100*c.max)
			}
		})
	}
}

// -cpus pins each queue's loop thread: with one queue and -cpus 1, one
// thread of the server may run only on CPU 1.
func TestLoopPinned(t *testing.T) {
	_, _, srv := serve(t, "-mode", "busy", "-cpus", "1")
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", srv.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	pinned := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		if strings.Contains(string(b), "Cpus_allowed_list:\t1\n") {
			pinned++
		}
	}
	if pinned != 1 {
		t.Fatalf("%d of %d threads pinned to CPU 1; want the loop's one", pinned, len(tasks))
	}
}
