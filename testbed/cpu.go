package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which the kernel's ABI fixes at 100 on every architecture Go runs on
// (`getconf CLK_TCK`), whatever the kernel's own tick rate (CONFIG_HZ).
const clockTick = time.Second / 100

// ProcessCPU returns the CPU time the process pid has used so far, in user
// and system mode together, over all its threads, those that have exited
// included (utime+stime of /proc/PID/stat). Its resolution is 10 ms, so
// measure differences over seconds, not milliseconds.
//
// The kernel charges a process for softirq work that happens to run on its
// thread (delivering a packet it just sent over a veth, for example) and not
// for the work that runs on other threads or in ksoftirqd.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("testbed: cpu time of pid %d: %w", pid, err)
	}
	ticks, err := parseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("testbed: cpu time of pid %d: %w", pid, err)
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseStatCPU returns utime+stime, in clock ticks, from the contents of
// /proc/PID/stat: "pid (comm) state ppid ... utime stime ...", where utime
// and stime are the 14th and 15th fields. comm may hold spaces and
// parentheses, so the fields are counted from the last ')'.
// TreeCPU is ProcessCPU summed over pid and every process below it (the
// workers of nginx, the children of Apache prefork) that is alive when it is
// called. A child that has exited and been reaped is counted in its parent's
// cutime, which this leaves out; servers measured with it keep their workers.
func TreeCPU(pid int) (time.Duration, error) {
	total, err := ProcessCPU(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range descendants(pid) {
		if d, err := ProcessCPU(c); err == nil { // it may have just exited
			total += d
		}
	}
	return total, nil
}

// descendants lists the processes below pid, from the ppid field of every
// /proc/PID/stat.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if pp, err := parseStatPPID(stat); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// parseStatPPID returns the parent pid, field 4 of /proc/PID/stat.
func parseStatPPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no ')' after the command name", abbrev(stat))
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("stat %q: no ppid", abbrev(stat))
	}
	return strconv.Atoi(string(f[1]))
}

func parseStatCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no ')' after the command name", abbrev(stat))
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3, state
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("stat %q: %d fields, want at least 15", abbrev(stat), len(f)+2)
	}
	var sum int64
	for _, j := range []int{utime, stime} {
		n, err := strconv.ParseInt(string(f[j]), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("stat %q: field %d is %q, want a tick count", abbrev(stat), j+3, f[j])
		}
		sum += n
	}
	return sum, nil
}

func abbrev(b []byte) []byte {
	if len(b) > 80 {
		return append(b[:80:80], "..."...)
	}
	return b
}

// CPUShare measures the CPU time the process pid uses over the next d of
// wall time and returns it as a share of one core: 0 for a process that
// slept throughout, 1 for one that kept one core busy (more with several
// busy threads). Measure over a few seconds: ProcessCPU counts in 10 ms
// steps. It returns early with ctx's error.
func CPUShare(ctx context.Context, pid int, d time.Duration) (float64, error) {
	c0, err := ProcessCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
	}
	c1, err := ProcessCPU(pid)
	if err != nil {
		return 0, err
	}
	return (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}
