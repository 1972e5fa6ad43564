package nic

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/internal/enum"
)

// NAPI knobs of an interface's queues, set for a while and put back: what
// they were is recorded in a file before anything changes, so that the
// next start puts them back when the process that set them died without
// doing it (SIGKILL). The file is locked (flock) while its process lives,
// which tells a leftover from a record in use.

// DefaultNAPIStateDir is where the records are kept: /run is emptied at
// boot, and so are the settings.
const DefaultNAPIStateDir = "/run/xhttpd"

// ErrNAPIRecordHeld is the answer when another running process holds an
// interface's record: it has set knobs there and will restore them.
var ErrNAPIRecordHeld = errors.New("held by a running process")

// NAPINetlink is what the knobs need of the netdev family: *Netdev, or a
// fake in tests.
type NAPINetlink interface {
	Queues(ifindex int) ([]NetdevQueue, error)
	NAPIs(ifindex int) ([]NAPI, error)
	SetNAPI(id uint32, k NAPIKnob, v uint64) error
}

// NAPIValues are values by knob.
type NAPIValues map[NAPIKnob]uint64

// NAPIRecord is what a process changed on one interface's NAPI instances.
type NAPIRecord struct {
	Ifindex int          `json:"ifindex"`
	Ifname  string       `json:"ifname"`
	PID     int          `json:"pid"`
	Time    time.Time    `json:"time"`
	Changes []NAPIChange `json:"changes"`
}

// NAPIChange is one NAPI instance's knobs: their values before, and the
// values set.
type NAPIChange struct {
	ID     uint32     `json:"id"`
	Queues []int      `json:"queues"` // the rx queues it serves, as queue-get said
	Old    NAPIValues `json:"old"`
	New    NAPIValues `json:"new"`
}

// NAPIOutcome is what became of one knob.
type NAPIOutcome int

const (
	NAPISet         NAPIOutcome = iota // set to the value asked for
	NAPIRestored                       // put back to its value before
	NAPIRejected                       // napi-set failed (its error says why)
	NAPIUnsupported                    // the kernel or driver lacks the knob: no napi-set, EOPNOTSUPP, or napi-get does not report it
	NAPINoInstance                     // the driver names no NAPI instance for the queue (queue-get), or the instance is gone
	NAPIChanged                        // restore: no longer the value set (changed by someone since), left as it is
)

var napiOutcomeNames = []string{"set", "restored", "rejected", "unsupported", "no-napi", "changed"}

func (o NAPIOutcome) String() string { return enum.Name(napiOutcomeNames, o, "NAPIOutcome") }

// NAPIResult is the outcome for one knob of the NAPI instance of a queue.
type NAPIResult struct {
	Queue   int
	NAPI    uint32 // 0: the queue has none
	Knob    NAPIKnob
	Outcome NAPIOutcome
	Value   uint64 // the value set, restored, or (NAPIChanged) found
	Err     error  // why not, for the outcomes other than set and restored
	// Earlier: the result of putting back an earlier process's record,
	// not of this one's settings.
	Earlier bool
}

// NAPIKnobs are knobs set on an interface, and its record, held until
// Restore. A nil *NAPIKnobs holds nothing.
type NAPIKnobs struct {
	nl   NAPINetlink
	file *napiFile
	rec  NAPIRecord
	set  map[uint32]map[NAPIKnob]bool // what napi-set took: only these are restored
}

// knobsOf lists v's knobs in the order of NAPIKnob.
func knobsOf(v NAPIValues) []NAPIKnob {
	var ks []NAPIKnob
	for k := range NumNAPIKnobs {
		if _, ok := v[k]; ok {
			ks = append(ks, k)
		}
	}
	return ks
}

// setOutcome sorts napi-set's errors: ENOENT is an instance gone,
// EOPNOTSUPP and a kernel without the operation a knob the kernel or driver
// lacks; anything else (EINVAL: an attribute or value refused) a rejection.
func setOutcome(err error, done NAPIOutcome) NAPIOutcome {
	switch {
	case err == nil:
		return done
	case errors.Is(err, unix.ENOENT):
		return NAPINoInstance
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, ErrNetdevUnsupported):
		return NAPIUnsupported
	}
	return NAPIRejected
}

// SetNAPIKnobs sets want on the NAPI instance of each of the interface's
// rx queues listed, as queue-get ties them, after recording their values
// in dir (and putting back whatever a dead process's record there holds).
// A knob the kernel or driver lacks, or a queue without an instance, is a
// result, not an error: the others are set. The error is for a record that
// cannot be kept (dir not writable, or ErrNAPIRecordHeld): then nothing is
// set. Knobs napi-get does not report (before 6.13) are not set, since
// they could not be put back.
func SetNAPIKnobs(nl NAPINetlink, dir string, ifindex int, ifname string, queues []int, want NAPIValues) (*NAPIKnobs, []NAPIResult, error) {
	// The record is locked before anything is read, so that no other
	// process sets or restores in between.
	f, err := openNAPIRecord(dir, ifindex, true)
	if err != nil {
		return nil, nil, err
	}
	var results []NAPIResult
	// A dead process's record, if RestoreNAPIKnobs has not dealt with it:
	// its values go back first. One that does not parse set nothing (see
	// RestoreNAPIKnobs), and is written over.
	if stale, err := f.read(); err == nil && stale != nil {
		results = restoreNAPI(nl, *stale, nil)
		if err := unrestored(results); err != nil {
			f.close()
			return nil, results, fmt.Errorf("%w: %s kept, nothing set", err, f.path)
		}
	}
	changes, more := napiChanges(nl, ifindex, ifname, queues, want)
	results = append(results, more...)
	if len(changes) == 0 {
		f.remove()
		sortResults(results)
		return nil, results, nil
	}
	h := &NAPIKnobs{nl: nl, file: f, set: map[uint32]map[NAPIKnob]bool{},
		rec: NAPIRecord{Ifindex: ifindex, Ifname: ifname, PID: os.Getpid(), Time: time.Now().UTC(), Changes: changes}}
	if err := f.write(h.rec); err != nil {
		f.remove()
		return nil, results, err
	}
	for _, c := range changes {
		for _, k := range knobsOf(c.New) {
			err := nl.SetNAPI(c.ID, k, c.New[k])
			o := setOutcome(err, NAPISet)
			if o == NAPISet {
				if h.set[c.ID] == nil {
					h.set[c.ID] = map[NAPIKnob]bool{}
				}
				h.set[c.ID][k] = true
			}
			for _, q := range c.Queues {
				results = append(results, NAPIResult{Queue: q, NAPI: c.ID, Knob: k, Outcome: o, Value: c.New[k], Err: err})
			}
		}
	}
	sortResults(results)
	if len(h.set) == 0 {
		f.remove()
		return nil, results, nil
	}
	return h, results, nil
}

// napiChanges finds the NAPI instance of each queue (queue-get) and reads
// its knobs (napi-get): the changes to make, and the results for what
// cannot be changed.
func napiChanges(nl NAPINetlink, ifindex int, ifname string, queues []int, want NAPIValues) ([]NAPIChange, []NAPIResult) {
	var results []NAPIResult
	every := func(q int, id uint32, o NAPIOutcome, err error) {
		for _, k := range knobsOf(want) {
			results = append(results, NAPIResult{Queue: q, NAPI: id, Knob: k, Outcome: o, Err: err})
		}
	}
	qs, err := nl.Queues(ifindex)
	var napis []NAPI
	if err == nil {
		napis, err = nl.NAPIs(ifindex)
	}
	if err != nil {
		for _, q := range queues {
			every(q, 0, setOutcome(err, NAPISet), err)
		}
		return nil, results
	}
	tie := map[int]uint32{}
	for _, q := range qs {
		if q.Rx && q.NAPIID != 0 {
			tie[int(q.ID)] = q.NAPIID
		}
	}
	byID := map[uint32]NAPI{}
	for _, n := range napis {
		byID[n.ID] = n
	}
	var changes []NAPIChange
	for _, q := range queues {
		id := tie[q]
		n, ok := byID[id]
		switch {
		case id == 0:
			every(q, 0, NAPINoInstance, fmt.Errorf("nic: %s rx queue %d: the driver names no NAPI instance for it (queue-get)", ifname, q))
			continue
		case !ok:
			every(q, id, NAPINoInstance, fmt.Errorf("nic: %s rx queue %d: NAPI %d not found (napi-get)", ifname, q, id))
			continue
		}
		if i := slices.IndexFunc(changes, func(c NAPIChange) bool { return c.ID == id }); i >= 0 {
			changes[i].Queues = append(changes[i].Queues, q) // one instance serving several queues
			continue
		}
		c := NAPIChange{ID: id, Queues: []int{q}, Old: NAPIValues{}, New: NAPIValues{}}
		for _, k := range knobsOf(want) {
			old, ok := n.Knob(k)
			if !ok {
				results = append(results, NAPIResult{Queue: q, NAPI: id, Knob: k, Outcome: NAPIUnsupported,
					Err: fmt.Errorf("nic: %s NAPI %d: napi-get does not report %s (Linux 6.13+)", ifname, id, k)})
				continue
			}
			c.Old[k], c.New[k] = old, want[k]
		}
		if len(c.New) > 0 {
			changes = append(changes, c)
		}
	}
	return changes, results
}

func sortResults(rs []NAPIResult) {
	slices.SortStableFunc(rs, func(a, b NAPIResult) int {
		if a.Queue != b.Queue {
			return a.Queue - b.Queue
		}
		return int(a.Knob) - int(b.Knob)
	})
}

// Restore puts back the values of the knobs set, unless someone changed
// them since, and removes the record. When a knob could not be put back
// (no CAP_NET_ADMIN left after dropping privileges, say) the record stays
// for the next start, and the error says so.
func (h *NAPIKnobs) Restore() ([]NAPIResult, error) {
	if h == nil || h.file == nil {
		return nil, nil
	}
	results := restoreNAPI(h.nl, h.rec, h.set)
	err := h.file.finish(results)
	h.file = nil
	return results, err
}

// RestoreNAPIKnobs puts back what a record in dir says was changed on the
// interface by a process that did not live to do it, and removes the
// record; without a record it does nothing. ErrNAPIRecordHeld: the process
// lives.
func RestoreNAPIKnobs(nl NAPINetlink, dir string, ifindex int) ([]NAPIResult, error) {
	f, err := openNAPIRecord(dir, ifindex, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rec, err := f.read()
	if err != nil {
		// Written before anything was set, and never torn by a process's
		// death once written: a record that does not parse set nothing.
		f.remove()
		return nil, fmt.Errorf("%w; removed it", err)
	}
	if rec == nil {
		f.remove()
		return nil, nil
	}
	results := restoreNAPI(nl, *rec, nil)
	return results, f.finish(results)
}

// restoreNAPI puts back rec's old values, those in only (nil: all, an
// earlier process's record). An
// instance is found by its ID, or else as the one queue-get now ties to its
// first queue (a driver that made it anew). A knob whose value is no longer
// the one set is left: someone changed it since (or, in a dead process's
// record, napi-set never took it).
func restoreNAPI(nl NAPINetlink, rec NAPIRecord, only map[uint32]map[NAPIKnob]bool) []NAPIResult {
	var results []NAPIResult
	napis, err := nl.NAPIs(rec.Ifindex)
	byID := map[uint32]NAPI{}
	for _, n := range napis {
		byID[n.ID] = n
	}
	tie := map[int]uint32{}
	if qs, err := nl.Queues(rec.Ifindex); err == nil {
		for _, q := range qs {
			if q.Rx && q.NAPIID != 0 {
				tie[int(q.ID)] = q.NAPIID
			}
		}
	}
	for _, c := range rec.Changes {
		q := -1
		if len(c.Queues) > 0 {
			q = c.Queues[0]
		}
		n, found := byID[c.ID]
		if !found {
			n, found = byID[tie[q]]
		}
		for _, k := range knobsOf(c.New) {
			if only != nil && !only[c.ID][k] {
				continue
			}
			r := NAPIResult{Queue: q, NAPI: c.ID, Knob: k, Value: c.Old[k], Earlier: only == nil}
			cur, reported := n.Knob(k)
			switch {
			case err != nil:
				r.Outcome, r.Err = setOutcome(err, NAPIRestored), err
			case !found:
				r.Outcome, r.Err = NAPINoInstance, fmt.Errorf("nic: %s NAPI %d is gone (its driver removed or remade it)", rec.Ifname, c.ID)
			case !reported:
				r.Outcome, r.Err = NAPIUnsupported, fmt.Errorf("nic: %s NAPI %d: napi-get does not report %s", rec.Ifname, n.ID, k)
			case cur != c.New[k]:
				r.Outcome, r.Value = NAPIChanged, cur
			default:
				r.NAPI = n.ID
				r.Err = nl.SetNAPI(n.ID, k, c.Old[k])
				r.Outcome = setOutcome(r.Err, NAPIRestored)
			}
			results = append(results, r)
		}
	}
	return results
}

// NAPIRecordPath is the record's file for the interface: one per interface
// index and network namespace (the same index names other interfaces in
// other namespaces, and the records of all share dir). The namespace is the
// calling thread's.
func NAPIRecordPath(dir string, ifindex int) (string, error) {
	st, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return "", fmt.Errorf("nic: NAPI record: network namespace: %w", err)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	return filepath.Join(dir, fmt.Sprintf("napi-netns%d-if%d.json", ino, ifindex)), nil
}

// ReadNAPIRecord reads the interface's record in dir, if there is one, and
// whether a running process holds it (a record in use, rather than one left
// to restore). It changes nothing.
func ReadNAPIRecord(dir string, ifindex int) (rec *NAPIRecord, held bool, err error) {
	path, err := NAPIRecordPath(dir, ifindex)
	if err != nil {
		return nil, false, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("nic: NAPI record: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		held = true
	}
	rec, err = parseNAPIRecord(f, path)
	return rec, held, err
}

func parseNAPIRecord(r io.Reader, path string) (*NAPIRecord, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("nic: NAPI record %s: %w", path, err)
	}
	if len(b) == 0 {
		return nil, nil // created, not yet written
	}
	var rec NAPIRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("nic: NAPI record %s: %w", path, err)
	}
	return &rec, nil
}

// napiFile is a record's file, open and locked (flock, exclusive) by this
// process; the kernel drops the lock when the process dies.
type napiFile struct {
	path string
	f    *os.File
}

// openNAPIRecord opens and locks the interface's record, creating it (and
// dir) if create; without create, fs.ErrNotExist when there is none.
func openNAPIRecord(dir string, ifindex int, create bool) (*napiFile, error) {
	path, err := NAPIRecordPath(dir, ifindex)
	if err != nil {
		return nil, err
	}
	flags := os.O_RDWR
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("nic: NAPI record: %w", err)
		}
		flags |= os.O_CREATE
	}
	for {
		f, err := os.OpenFile(path, flags, 0o644)
		if err != nil {
			return nil, fmt.Errorf("nic: NAPI record: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				err = ErrNAPIRecordHeld
				if rec, _, _ := ReadNAPIRecord(dir, ifindex); rec != nil {
					err = fmt.Errorf("%w (pid %d)", err, rec.PID)
				}
			}
			return nil, fmt.Errorf("nic: NAPI record %s: %w", path, err)
		}
		// The holder before may have removed the file between our open and
		// our lock: then the lock is on a file without a name. Try again.
		var held, named unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &named) == nil && held.Ino == named.Ino && held.Dev == named.Dev {
			return &napiFile{path: path, f: f}, nil
		}
		f.Close()
	}
}

func (n *napiFile) read() (*NAPIRecord, error) {
	if _, err := n.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("nic: NAPI record %s: %w", n.path, err)
	}
	return parseNAPIRecord(n.f, n.path)
}

// write replaces the record. No fsync: the record has to outlive the
// process, which the page cache does, not the machine, whose reboot resets
// the settings too.
func (n *napiFile) write(rec NAPIRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("nic: NAPI record %s: %w", n.path, err)
	}
	if err := n.f.Truncate(0); err != nil {
		return fmt.Errorf("nic: NAPI record %s: %w", n.path, err)
	}
	if _, err := n.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("nic: NAPI record %s: %w", n.path, err)
	}
	return nil
}

// remove deletes the record, then lets go of it: removed first, so that no
// one takes the lock of a file about to lose its name.
func (n *napiFile) remove() error {
	err := os.Remove(n.path)
	n.close()
	if err != nil {
		return fmt.Errorf("nic: NAPI record: %w", err)
	}
	return nil
}

func (n *napiFile) close() { n.f.Close() }

// unrestored is the first knob of results that napi-set refused to put
// back, as an error.
func unrestored(results []NAPIResult) error {
	for _, r := range results {
		if r.Outcome == NAPIRejected {
			return fmt.Errorf("nic: NAPI %d %s not restored: %w", r.NAPI, r.Knob, r.Err)
		}
	}
	return nil
}

// finish removes the record if every knob in results is dealt with, and
// keeps it for the next start otherwise.
func (n *napiFile) finish(results []NAPIResult) error {
	if err := unrestored(results); err != nil {
		n.close()
		return fmt.Errorf("%w: %s kept for the next start to restore", err, n.path)
	}
	return n.remove()
}
