package nic

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeNetdev is the netdev family of a NIC that ties each rx queue to a
// NAPI instance, as ice or mlx5 do: no kernel involved.
type fakeNetdev struct {
	queues []NetdevQueue
	napis  []NAPI
	err    error              // from queue-get and napi-get
	refuse map[NAPIKnob]error // napi-set's answer for a knob
	sets   int
}

func (f *fakeNetdev) Queues(int) ([]NetdevQueue, error) { return f.queues, f.err }

func (f *fakeNetdev) NAPIs(int) ([]NAPI, error) {
	out := make([]NAPI, len(f.napis))
	for i, n := range f.napis { // copies, as the kernel's answers are
		out[i] = napiOf(n.ID, n.DeferHardIRQs, n.GROFlushTimeout, n.IRQSuspendTimeout)
	}
	return out, f.err
}

func (f *fakeNetdev) SetNAPI(id uint32, k NAPIKnob, v uint64) error {
	if err := f.refuse[k]; err != nil {
		return fmt.Errorf("nic: netdev napi-set NAPI %d %s %d: %w", id, k, v, err)
	}
	for i := range f.napis {
		if f.napis[i].ID != id {
			continue
		}
		f.sets++
		switch k {
		case DeferHardIRQs:
			f.napis[i].DeferHardIRQs = ptr(uint32(v))
		case GROFlushTimeout:
			f.napis[i].GROFlushTimeout = ptr(v)
		case IRQSuspendTimeout:
			f.napis[i].IRQSuspendTimeout = ptr(v)
		}
		return nil
	}
	return fmt.Errorf("nic: netdev napi-set NAPI %d: %w", id, unix.ENOENT)
}

func napiOf(id uint32, d *uint32, g, s *uint64) NAPI {
	cp := func(p *uint64) *uint64 {
		if p == nil {
			return nil
		}
		return ptr(*p)
	}
	var dd *uint32
	if d != nil {
		dd = ptr(*d)
	}
	return NAPI{ID: id, DeferHardIRQs: dd, GROFlushTimeout: cp(g), IRQSuspendTimeout: cp(s)}
}

// knobs reads the fake's values for NAPI id, as napi-get would.
func (f *fakeNetdev) knobs(t *testing.T, id uint32) NAPIValues {
	t.Helper()
	for _, n := range f.napis {
		if n.ID == id {
			v := NAPIValues{}
			for k := range NumNAPIKnobs {
				if x, ok := n.Knob(k); ok {
					v[k] = x
				}
			}
			return v
		}
	}
	t.Fatalf("no NAPI %d", id)
	return nil
}

// twoQueues is a NIC with rx queues 0 and 1 on NAPI 8193 and 8194 (queue 1's
// with gro-flush-timeout set by its operator), tx queues on the same.
func twoQueues() *fakeNetdev {
	return &fakeNetdev{
		queues: []NetdevQueue{{ID: 0, Rx: true, NAPIID: 8193}, {ID: 1, Rx: true, NAPIID: 8194}, {ID: 0, NAPIID: 8193}, {ID: 1, NAPIID: 8194}},
		napis: []NAPI{
			napiOf(8193, ptr[uint32](0), ptr[uint64](0), ptr[uint64](0)),
			napiOf(8194, ptr[uint32](0), ptr[uint64](20000), ptr[uint64](0)),
		},
	}
}

var suspendValues = NAPIValues{DeferHardIRQs: 100, GROFlushTimeout: 50000, IRQSuspendTimeout: 20000000}

func outcomes(rs []NAPIResult) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "q%d/%d %s %s=%d; ", r.Queue, r.NAPI, r.Outcome, r.Knob, r.Value)
	}
	return b.String()
}

func count(rs []NAPIResult, o NAPIOutcome) int {
	n := 0
	for _, r := range rs {
		if r.Outcome == o {
			n++
		}
	}
	return n
}

func recordExists(t *testing.T, dir string) bool {
	t.Helper()
	path, err := NAPIRecordPath(dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(path)
	return err == nil
}

// Set, then restore: the record is written before the first napi-set,
// names the old and new values, and is held while the knobs are; Restore
// puts the old values back and removes it. A value changed by someone in
// between is left as they set it.
func TestNAPIKnobsSetRestore(t *testing.T) {
	dir := t.TempDir()
	nd := twoQueues()
	h, rs, err := SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues)
	if err != nil || h == nil {
		t.Fatalf("set: %v, %s", err, outcomes(rs))
	}
	if len(rs) != 6 || count(rs, NAPISet) != 6 {
		t.Errorf("set: %s; want 6 set", outcomes(rs))
	}
	for _, id := range []uint32{8193, 8194} {
		if got := nd.knobs(t, id); fmt.Sprint(got) != fmt.Sprint(suspendValues) {
			t.Errorf("NAPI %d after set: %v, want %v", id, got, suspendValues)
		}
	}
	rec, held, err := ReadNAPIRecord(dir, 7)
	if err != nil || rec == nil || !held {
		t.Fatalf("record while set: %+v held %v, %v", rec, held, err)
	}
	if rec.PID != os.Getpid() || rec.Ifname != "eth1" || len(rec.Changes) != 2 ||
		rec.Changes[1].ID != 8194 || rec.Changes[1].Old[GROFlushTimeout] != 20000 || rec.Changes[1].New[GROFlushTimeout] != 50000 {
		t.Errorf("record %+v", rec)
	}

	nd.napis[0].DeferHardIRQs = ptr[uint32](5) // an operator's change, after ours
	rs, err = h.Restore()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if count(rs, NAPIRestored) != 5 || count(rs, NAPIChanged) != 1 {
		t.Errorf("restore: %s; want 5 restored, 1 changed", outcomes(rs))
	}
	if got := nd.knobs(t, 8193); got[DeferHardIRQs] != 5 || got[GROFlushTimeout] != 0 || got[IRQSuspendTimeout] != 0 {
		t.Errorf("NAPI 8193 after restore: %v, want the operator's 5 and the rest 0", got)
	}
	if got := nd.knobs(t, 8194); got[GROFlushTimeout] != 20000 || got[IRQSuspendTimeout] != 0 {
		t.Errorf("NAPI 8194 after restore: %v, want gro-flush-timeout 20000 back", got)
	}
	if recordExists(t, dir) {
		t.Error("record left after restore")
	}
	if rs, err := h.Restore(); rs != nil || err != nil {
		t.Errorf("second restore: %s, %v; want nothing", outcomes(rs), err)
	}
}

// A process killed while holding the knobs leaves its record, unlocked; the
// next start (RestoreNAPIKnobs) puts the old values back and removes it.
// SetNAPIKnobs, finding it, does the same first, and records the true old
// values, not the dead process's.
func TestNAPIKnobsStaleRecord(t *testing.T) {
	dir := t.TempDir()
	nd := twoQueues()
	killed := func() {
		t.Helper()
		h, _, err := SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues)
		if err != nil {
			t.Fatal(err)
		}
		h.file.close() // what the kernel does for a process that dies
	}

	killed()
	if _, held, err := ReadNAPIRecord(dir, 7); held || err != nil {
		t.Fatalf("after the kill: held %v, %v; want a record no one holds", held, err)
	}
	rs, err := RestoreNAPIKnobs(nd, dir, 7)
	if err != nil || count(rs, NAPIRestored) != 6 || !rs[0].Earlier {
		t.Fatalf("restore at start: %s, %v; want 6 restored, of an earlier process's record", outcomes(rs), err)
	}
	if got := nd.knobs(t, 8194); got[GROFlushTimeout] != 20000 || got[DeferHardIRQs] != 0 {
		t.Errorf("NAPI 8194 after restore at start: %v", got)
	}
	if recordExists(t, dir) {
		t.Error("record left after restore at start")
	}
	if rs, err := RestoreNAPIKnobs(nd, dir, 7); rs != nil || err != nil {
		t.Errorf("without a record: %s, %v; want nothing", outcomes(rs), err)
	}

	killed()
	h, rs, err := SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues)
	if err != nil || count(rs, NAPIRestored) != 6 || count(rs, NAPISet) != 6 {
		t.Fatalf("set over a stale record: %s, %v; want 6 restored, then 6 set", outcomes(rs), err)
	}
	for _, r := range rs {
		if r.Earlier != (r.Outcome == NAPIRestored) {
			t.Errorf("%s %s: Earlier %v: want it for the dead process's knobs only", r.Outcome, r.Knob, r.Earlier)
		}
	}
	if h.rec.Changes[1].Old[GROFlushTimeout] != 20000 {
		t.Errorf("recorded old values %v: want the operator's, not the dead process's", h.rec.Changes[1].Old)
	}
	if _, err := h.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := nd.knobs(t, 8194); got[GROFlushTimeout] != 20000 {
		t.Errorf("after it all: %v", got)
	}
}

// A knob the kernel refuses (EINVAL) or lacks (EOPNOTSUPP, or not in
// napi-get's answer, as before 6.13) is reported; the others are set, and
// only those are restored.
func TestNAPIKnobsRejected(t *testing.T) {
	dir := t.TempDir()
	nd := twoQueues()
	nd.refuse = map[NAPIKnob]error{IRQSuspendTimeout: unix.EINVAL, DeferHardIRQs: unix.EOPNOTSUPP}
	h, rs, err := SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues)
	if err != nil || h == nil {
		t.Fatalf("%v: %s", err, outcomes(rs))
	}
	for _, r := range rs {
		want := map[NAPIKnob]NAPIOutcome{DeferHardIRQs: NAPIUnsupported, GROFlushTimeout: NAPISet, IRQSuspendTimeout: NAPIRejected}[r.Knob]
		if r.Outcome != want || (want != NAPISet) != (r.Err != nil) {
			t.Errorf("queue %d %s: %s (%v), want %s", r.Queue, r.Knob, r.Outcome, r.Err, want)
		}
	}
	if got := nd.knobs(t, 8193); got[GROFlushTimeout] != 50000 || got[IRQSuspendTimeout] != 0 {
		t.Errorf("after set: %v", got)
	}
	nd.refuse = nil
	sets := nd.sets
	rs, err = h.Restore()
	if err != nil || len(rs) != 2 || count(rs, NAPIRestored) != 2 || nd.sets-sets != 2 {
		t.Errorf("restore: %s, %v, %d napi-sets; want gro-flush-timeout of both restored and nothing else", outcomes(rs), err, nd.sets-sets)
	}

	// A kernel before 6.13: napi-get reports no knob, so none is set (it
	// could not be put back), and nothing is recorded.
	old := &fakeNetdev{queues: []NetdevQueue{{ID: 0, Rx: true, NAPIID: 513}}, napis: []NAPI{{ID: 513}}}
	h, rs, err = SetNAPIKnobs(old, dir, 7, "eth1", []int{0}, suspendValues)
	if err != nil || h != nil || count(rs, NAPIUnsupported) != 3 || old.sets != 0 {
		t.Errorf("6.12: %v %v: %s; want 3 unsupported, nothing set", h, err, outcomes(rs))
	}
	if recordExists(t, dir) {
		t.Error("a record with nothing set")
	}
	// A kernel without the netdev family: the zero Netdev stands for it.
	if h, rs, err := SetNAPIKnobs(&Netdev{}, dir, 7, "eth1", []int{0, 1}, suspendValues); err != nil || h != nil || count(rs, NAPIUnsupported) != 6 {
		t.Errorf("no netdev family: %v %v: %s; want 6 unsupported", h, err, outcomes(rs))
	}
}

// A queue the driver ties to no NAPI instance (veth: queue-get names none),
// or to one napi-get does not list, is reported for each knob; nothing is
// set, nothing recorded, and the other queues are set.
func TestNAPIKnobsNoInstance(t *testing.T) {
	dir := t.TempDir()
	veth := &fakeNetdev{
		queues: []NetdevQueue{{ID: 0, Rx: true}, {ID: 1, Rx: true}, {ID: 0}, {ID: 1}},
		napis:  []NAPI{napiOf(4287, ptr[uint32](0), ptr[uint64](0), ptr[uint64](0)), napiOf(4288, ptr[uint32](0), ptr[uint64](0), ptr[uint64](0))},
	}
	h, rs, err := SetNAPIKnobs(veth, dir, 7, "veth0", []int{0, 1}, suspendValues)
	if err != nil || h != nil || len(rs) != 6 || count(rs, NAPINoInstance) != 6 || veth.sets != 0 {
		t.Fatalf("veth: %v %v: %s; want 6 no-napi and nothing set", h, err, outcomes(rs))
	}
	if !strings.Contains(rs[0].Err.Error(), "names no NAPI instance") || !strings.Contains(rs[0].Err.Error(), "queue-get") {
		t.Errorf("veth: %v", rs[0].Err)
	}
	if recordExists(t, dir) {
		t.Error("veth: a record with nothing set")
	}
	if rs, err := h.Restore(); rs != nil || err != nil {
		t.Errorf("restore of nothing: %s %v", outcomes(rs), err)
	}

	nd := twoQueues()
	nd.queues[1].NAPIID = 9999
	h, rs, err = SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues)
	if err != nil || count(rs, NAPISet) != 3 || count(rs, NAPINoInstance) != 3 || rs[3].NAPI != 9999 {
		t.Errorf("queue 1 on a NAPI not listed: %s %v", outcomes(rs), err)
	}
	if _, err := h.Restore(); err != nil {
		t.Error(err)
	}
}

// A running process's record is not another's to restore or write over;
// a restore napi-set refuses (EPERM: no CAP_NET_ADMIN left) keeps the
// record for the next start; an instance gone by the restore is reported,
// and one the driver made anew for the same queue is found through
// queue-get; a record that does not parse is removed.
func TestNAPIKnobsRecordKeeping(t *testing.T) {
	dir := t.TempDir()
	nd := twoQueues()
	h, _, err := SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := SetNAPIKnobs(nd, dir, 7, "eth1", []int{0, 1}, suspendValues); !errors.Is(err, ErrNAPIRecordHeld) || !strings.Contains(err.Error(), fmt.Sprint("pid ", os.Getpid())) {
		t.Errorf("second set: %v, want ErrNAPIRecordHeld naming the pid", err)
	}
	if _, err := RestoreNAPIKnobs(nd, dir, 7); !errors.Is(err, ErrNAPIRecordHeld) {
		t.Errorf("restore at start while held: %v, want ErrNAPIRecordHeld", err)
	}

	nd.refuse = map[NAPIKnob]error{IRQSuspendTimeout: unix.EPERM}
	if _, err := h.Restore(); err == nil || !strings.Contains(err.Error(), "kept for the next start") {
		t.Errorf("restore refused: %v, want the record kept", err)
	}
	if rec, held, _ := ReadNAPIRecord(dir, 7); rec == nil || held {
		t.Fatalf("after a refused restore: %+v held %v; want the record, not held", rec, held)
	}
	nd.refuse = nil
	// The driver remade queue 0's instance under a new ID, with the values
	// it had (persistent NAPI config), and dropped queue 1's.
	nd.napis = nd.napis[:1]
	nd.napis[0].ID = 8195
	nd.queues[0].NAPIID = 8195
	rs, err := RestoreNAPIKnobs(nd, dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := nd.knobs(t, 8195); got[IRQSuspendTimeout] != 0 {
		t.Errorf("remade instance: %v, want irq-suspend-timeout 0 back", got)
	}
	if count(rs, NAPINoInstance) != 3 || !strings.Contains(outcomes(rs), "q0/8195 restored irq-suspend-timeout=0") {
		t.Errorf("restore: %s; want queue 0's through its new instance, 3 no-napi for queue 1's", outcomes(rs))
	}
	if recordExists(t, dir) {
		t.Error("record left")
	}

	path, _ := NAPIRecordPath(dir, 7)
	if err := os.WriteFile(path, []byte(`{"ifindex": 7, "chan`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreNAPIKnobs(nd, dir, 7); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("torn record: %v", err)
	}
	if recordExists(t, dir) {
		t.Error("torn record left")
	}
	if _, _, err := SetNAPIKnobs(nd, "/proc/no-such-dir", 7, "eth1", []int{0}, suspendValues); err == nil {
		t.Error("a state dir that cannot be made: no error")
	}
}

func TestNAPIKnobNames(t *testing.T) {
	for k := range NumNAPIKnobs {
		b, err := k.MarshalText()
		var back NAPIKnob
		if err != nil || back.UnmarshalText(b) != nil || back != k {
			t.Errorf("%d: %s %v", k, b, err)
		}
	}
	if err := new(NAPIKnob).UnmarshalText([]byte("threaded")); err == nil {
		t.Error("threaded is not a knob here")
	}
}
