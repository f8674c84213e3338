// Go (a static binary, CGO_ENABLED=0): the runtime's threads and
// signals, goroutines, net/http on loopback, os/exec, files, timers.
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	runtime.GOMAXPROCS(4)
	var wg sync.WaitGroup
	results := make(chan int, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(n int) { defer wg.Done(); results <- n * n }(i)
	}
	wg.Wait()
	close(results)
	sum := 0
	for r := range results {
		sum += r
	}
	if sum != 328350 {
		check(fmt.Errorf("sum %d", sum))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") }))
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	check(err)
	body, err := io.ReadAll(resp.Body)
	check(err)
	if string(body) != "served" {
		check(fmt.Errorf("body %q", body))
	}

	out, err := exec.Command("echo", "child").Output()
	check(err)
	if string(out) != "child\n" {
		check(fmt.Errorf("child %q", out))
	}

	dir, err := os.MkdirTemp("", "go")
	check(err)
	buf := make([]byte, 4096)
	_, err = rand.Read(buf)
	check(err)
	check(os.WriteFile(filepath.Join(dir, "f"), buf, 0o600))
	check(os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "g")))
	entries, err := os.ReadDir(dir)
	check(err)
	if len(entries) != 1 {
		check(fmt.Errorf("entries %d", len(entries)))
	}
	check(os.RemoveAll(dir))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	check(syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	select {
	case <-sigs:
	case <-time.After(5 * time.Second):
		check(fmt.Errorf("no signal"))
	}
	timer := time.NewTimer(10 * time.Millisecond)
	<-timer.C
	fmt.Println("go ok")
}
