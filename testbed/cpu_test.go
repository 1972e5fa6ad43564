package testbed

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a ')' in it, as a process may choose.
	const stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 1146 0 0 0 173 58 0 0 20 0 7 0 1234 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 173+58 {
		t.Errorf("parseStatCPU = %d, %v; want %d", got, err, 173+58)
	}
	for _, bad := range []string{
		"",
		"4242 (x S 1 2 3",
		"4242 (x) S 1 4242 4242 0 -1 4194560 1146 0 0 0 173", // cut before stime
		"4242 (x) S 1 4242 4242 0 -1 4194560 1146 0 0 0 17x 58 0",
		"4242 (x) S 1 4242 4242 0 -1 4194560 1146 0 0 0 -1 58 0",
	} {
		if n, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) = %d, want an error", bad, n)
		}
	}
}

func TestProcessCPUBusy(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; !stop.Load(); n++ {
		}
	}()
	// Spin until the process has used 100 ms more, for 2 s at most: on a
	// loaded machine (the whole suite twice at once) 200 ms of spinning
	// got 80 ms of CPU.
	var used time.Duration
	for start := time.Now(); used < 100*time.Millisecond && time.Since(start) < 2*time.Second; {
		time.Sleep(50 * time.Millisecond)
		after, err := ProcessCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		used = after - before
	}
	stop.Store(true)
	<-done
	if used < 100*time.Millisecond {
		t.Errorf("a goroutine spinning for 2 s: ProcessCPU grew by %v, want > 100ms", used)
	}
}

func TestCPUShareSleeper(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	share, err := CPUShare(context.Background(), cmd.Process.Pid, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if share > 0.05 {
		t.Errorf("sleep(1) used %.0f%% of a core, want about 0", 100*share)
	}
}

func TestProcessCPUNoProcess(t *testing.T) {
	// Above the kernel's largest pid_max (2^22), so never a live process.
	_, err := ProcessCPU(1 << 23)
	if err == nil || !strings.Contains(err.Error(), "pid 8388608") {
		t.Errorf("ProcessCPU of a missing pid: %v, want an error naming the pid", err)
	}
}

// TreeCPU counts the children: a shell whose child burns CPU.
func TestTreeCPU(t *testing.T) {
	// A busy child for 1.5 s at most, and a sleeping one.
	cmd := exec.Command("sh", "-c", "sh -c 'while :; do :; done' & sleep 1.5; kill $!")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	// Until the busy child has run for 200 ms: on a loaded machine (the
	// whole suite twice at once) 500 ms gave it 180.
	var own, tree time.Duration
	for start := time.Now(); time.Since(start) < 1300*time.Millisecond; {
		time.Sleep(100 * time.Millisecond)
		var err error
		if own, err = ProcessCPU(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if tree, err = TreeCPU(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if tree >= own+200*time.Millisecond {
			break
		}
	}
	if n := len(descendants(cmd.Process.Pid)); n != 2 {
		t.Errorf("descendants: %v, want the two children", descendants(cmd.Process.Pid))
	}
	if tree < own+200*time.Millisecond {
		t.Errorf("TreeCPU %v, ProcessCPU %v: the busy child's CPU is missing", tree, own)
	}
}
