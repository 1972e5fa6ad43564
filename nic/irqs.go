package nic

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Interrupts of receive queues and the CPUs they are steered to. A queue's
// interrupt is best taken from the kernel (the irq of the queue's NAPI
// instance, netdev netlink); drivers that do not report it are found by
// their lines in /proc/interrupts, which name the interface (i40e, ice, igb,
// igc, ixgbe: "eth0-TxRx-3", "i40e-eth0-TxRx-3") or, for virtio, the device
// ("virtio2-input.3"). Only reads live here.

// QueueIRQ is the interrupt of one receive queue.
type QueueIRQ struct {
	Queue int    `json:"queue"`
	IRQ   int    `json:"irq"`
	Name  string `json:"name,omitempty"` // the action in /proc/interrupts
}

// IRQsFromInterrupts finds the receive queues' interrupts in the text of
// /proc/interrupts: the lines whose action names the interface (anywhere, as
// a whole word) or the device (at the start: virtio2 for a virtio NIC), and
// that are neither send-only nor the device's other interrupts (config,
// control, link, misc). The queue is the last number after the name.
func IRQsFromInterrupts(r io.Reader, ifname, devname string) ([]QueueIRQ, error) {
	var out []QueueIRQ
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	ncpu := -1
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if ncpu < 0 { // the header: CPU0 CPU1 ...
			ncpu = len(fields)
			continue
		}
		if len(fields) < 2 || !strings.HasSuffix(fields[0], ":") {
			continue
		}
		irq, err := strconv.Atoi(strings.TrimSuffix(fields[0], ":"))
		if err != nil {
			continue // NMI, LOC and the other per-CPU counters
		}
		for _, action := range actions(fields[1:], ncpu) {
			if q, ok := rxQueueOf(action, ifname, devname); ok {
				out = append(out, QueueIRQ{Queue: q, IRQ: irq, Name: action})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nic: /proc/interrupts: %w", err)
	}
	slices.SortFunc(out, func(a, b QueueIRQ) int { return a.Queue - b.Queue })
	return out, nil
}

// actions are the handler names at the end of a /proc/interrupts line:
// after the per-CPU counts, the chip, and the hardware IRQ with its trigger
// ("1-edge", or "PCI-MSI-edge" in older kernels). Several handlers sharing
// an IRQ are listed with ", ".
func actions(fields []string, ncpu int) []string {
	if len(fields) > ncpu {
		fields = fields[ncpu:]
	}
	last := -1
	for i, f := range fields {
		l := strings.ToLower(f)
		if strings.HasSuffix(l, "edge") || strings.HasSuffix(l, "level") {
			last = i
		}
	}
	if last >= 0 {
		fields = fields[last+1:]
	} else if len(fields) > 0 {
		fields = fields[len(fields)-1:]
	}
	var out []string
	for _, f := range fields {
		for _, a := range strings.Split(f, ",") {
			if a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

func rxQueueOf(action, ifname, devname string) (int, bool) {
	rest, ok := afterWord(action, ifname, false)
	if !ok && devname != "" {
		rest, ok = afterWord(action, devname, true)
	}
	if !ok {
		return 0, false
	}
	l := strings.ToLower(rest)
	for _, other := range []string{"output", "config", "control", "ctrl", "link", "misc", "async", "event"} {
		if strings.Contains(l, other) {
			return 0, false
		}
	}
	if strings.Contains(l, "tx") && !strings.Contains(l, "rx") {
		return 0, false
	}
	// The last run of digits.
	end := len(rest)
	for end > 0 && !isDigit(rest[end-1]) {
		end--
	}
	start := end
	for start > 0 && isDigit(rest[start-1]) {
		start--
	}
	if start == end {
		return 0, false
	}
	q, err := strconv.Atoi(rest[start:end])
	return q, err == nil
}

// afterWord finds word in s as a whole word (not inside a longer name) and
// returns what follows it; atStart asks for it at the start of s.
func afterWord(s, word string, atStart bool) (string, bool) {
	if word == "" {
		return "", false
	}
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i:i+len(word)] != word {
			continue
		}
		if atStart && i > 0 {
			return "", false
		}
		if i > 0 && isWordByte(s[i-1]) {
			continue
		}
		if j := i + len(word); j < len(s) && isWordByte(s[j]) {
			continue
		}
		return s[i+len(word):], true
	}
	return "", false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isWordByte(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// DeviceName is the name of the interface's device on its bus (a PCI
// address, virtio2), or "" for a virtual interface.
func DeviceName(ifname string) string {
	p, err := filepath.EvalSymlinks(filepath.Join("/sys/class/net", ifname, "device"))
	if err != nil {
		return ""
	}
	return filepath.Base(p)
}

// IRQAffinity reads the CPUs an interrupt may be delivered to
// (/proc/irq/N/smp_affinity_list).
func IRQAffinity(irq int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/irq/%d/smp_affinity_list", irq))
	if err != nil {
		return nil, fmt.Errorf("nic: irq %d affinity: %w", irq, err)
	}
	cpus, err := ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("nic: irq %d affinity: %w", irq, err)
	}
	return cpus, nil
}

// ParseCPUList reads the kernel's CPU list format: "0-3,8,10-11".
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	if s == "" {
		return cpus, nil
	}
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("CPU list %q: %q", s, r)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: %q", s, r)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// FormatCPUList writes cpus (sorted) in the kernel's CPU list format.
func FormatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", cpus[i], cpus[j])
		} else {
			fmt.Fprintf(&b, "%d", cpus[i])
		}
		i = j + 1
	}
	return b.String()
}

// IRQBalanceRunning reports whether an irqbalance daemon runs: it moves
// interrupts to balance load, and will move a queue's interrupt away from
// the CPU its loop is pinned to.
func IRQBalanceRunning() bool {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		if b, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(b)) == "irqbalance" {
			return true
		}
	}
	return false
}
