package irq

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newEventfd(t *testing.T) int {
	t.Helper()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(efd) })
	return efd
}

// The netpoller wakes for a write that comes while it sleeps, returns at
// once for one that came before, times out, and returns stopped when
// closed, asleep or not.
func TestNetpollerSleep(t *testing.T) {
	efd := newEventfd(t)
	n, err := newNetpoller(efd)
	if err != nil {
		t.Fatal(err)
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}

	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(efd, one)
	}()
	start := time.Now()
	if stopped, err := n.sleep(0); stopped || err != nil {
		t.Fatalf("sleep: stopped %v, %v", stopped, err)
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		t.Errorf("woke after %v, before the write", d)
	}
	// Still readable: the next sleep returns at once.
	if stopped, err := n.sleep(0); stopped || err != nil {
		t.Fatalf("sleep while readable: stopped %v, %v", stopped, err)
	}
	var buf [8]byte
	unix.Read(efd, buf[:])

	start = time.Now()
	if stopped, err := n.sleep(5 * time.Millisecond); stopped || err != nil {
		t.Fatalf("sleep with a timeout: stopped %v, %v", stopped, err)
	}
	if d := time.Since(start); d < 5*time.Millisecond || d > time.Second {
		t.Errorf("a 5 ms sleep took %v", d)
	}

	go func() {
		time.Sleep(20 * time.Millisecond)
		n.close()
	}()
	if stopped, err := n.sleep(0); !stopped || err != nil {
		t.Fatalf("sleep across close: stopped %v, %v", stopped, err)
	}
	if stopped, _ := n.sleep(0); !stopped {
		t.Fatal("a sleep after close did not return stopped")
	}
	if _, err := unix.FcntlInt(uintptr(efd), unix.F_GETFD, 0); err != nil {
		t.Fatalf("close closed the descriptor it was given: %v", err)
	}
}

// A socket in an error state ends the sleep with an error, not a spin.
func TestNetpollerReportsErrors(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	n, err := newNetpoller(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	unix.Close(fds[1]) // POLLHUP
	if _, err := n.sleep(time.Second); err == nil {
		t.Fatal("no error for a hung-up descriptor")
	}
}

// Sleeping, short or long, allocates nothing.
func TestNetpollerAllocatesNothing(t *testing.T) {
	efd := newEventfd(t)
	n, err := newNetpoller(efd)
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	if a := testing.AllocsPerRun(100, func() { n.sleep(0); n.sleep(time.Millisecond) }); a != 0 {
		t.Errorf("%v allocations per sleep", a)
	}
}

// A descriptor the netpoller cannot take (a regular file) is an error at
// once, not a loop that never wakes.
func TestNetpollerRefusesFiles(t *testing.T) {
	f, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f)
	if n, err := newNetpoller(f); err == nil {
		n.close()
		t.Fatal("no error for a directory")
	}
}
