// Java: the JVM's own start (threads, memory, signals, cgroups), an
// executor, a child process, sockets, files.
import java.io.*;
import java.net.*;
import java.nio.file.*;
import java.util.concurrent.*;

public class Check {
    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        Future<Integer>[] fs = new Future[8];
        for (int i = 0; i < 8; i++) {
            final int n = i;
            fs[i] = pool.submit(() -> n * n);
        }
        int sum = 0;
        for (Future<Integer> f : fs) sum += f.get();
        if (sum != 140) throw new AssertionError("sum " + sum);
        pool.shutdown();

        Process p = new ProcessBuilder("echo", "child").start();
        String line = new BufferedReader(new InputStreamReader(p.getInputStream())).readLine();
        if (p.waitFor() != 0 || !"child".equals(line)) throw new AssertionError("child");

        try (ServerSocket srv = new ServerSocket(0, 5, InetAddress.getLoopbackAddress());
             Socket cli = new Socket(InetAddress.getLoopbackAddress(), srv.getLocalPort());
             Socket conn = srv.accept()) {
            cli.getOutputStream().write(7);
            if (conn.getInputStream().read() != 7) throw new AssertionError("socket");
        }

        Path dir = Files.createTempDirectory("java");
        Path f = dir.resolve("f");
        Files.write(f, new byte[4096]);
        Files.copy(f, dir.resolve("g"));
        if (Files.size(dir.resolve("g")) != 4096) throw new AssertionError("copy");
        Files.delete(f);
        Files.delete(dir.resolve("g"));
        Files.delete(dir);
        Thread.sleep(10);
        Runtime.getRuntime().availableProcessors();
        System.gc();
        System.out.println("java ok");
    }
}
