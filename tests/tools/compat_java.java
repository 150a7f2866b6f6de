// Java clients and a server for tests/compat.bats (JDK 11 or later), run as
// `java tests/tools/compat_java.java MODE ...` or compiled with javac into
// class CompatJava (not public, so the file name may differ).
// Each mode prints what it sent, received and saw as its peer, one fact a
// line, so the test can compare exact output:
//   socket HOST PORT   java.net.Socket: a blocking connect, then a connect
//                      with a timeout (non-blocking connect + poll inside
//                      the JDK); bytes 0x00..0xff both ways; half-close
//   http URL           java.net.http.HttpClient GET (NIO, epoll selector)
//   nio HOST PORT      SocketChannel, non-blocking connect, Selector
//   burst HOST PORT N GATE
//                      N non-blocking SocketChannels on one Selector into a
//                      listener that accepts only once GATE exists (the
//                      program makes GATE after 0.5 s); each echoes a line
//   udp HOST PORT      DatagramSocket (unconnected send/receive) and a
//                      connected DatagramChannel ask one DNS A query each
//   httpserver PORT READY
//                      com.sun.net.httpserver.HttpServer on *:PORT (NIO
//                      accept + Selector), answers every request with the
//                      peer and local addresses it saw; writes READY when
//                      it listens
import java.io.*;
import java.net.*;
import java.net.http.*;
import java.nio.ByteBuffer;
import java.nio.channels.*;
import java.time.Duration;
import java.util.Arrays;

class CompatJava {
	static byte[] pattern(int n) {
		byte[] b = new byte[n];
		for (int i = 0; i < n; i++)
			b[i] = (byte) i;
		return b;
	}

	static void socket(String host, int port) throws Exception {
		InetSocketAddress dst = new InetSocketAddress(host, port);
		byte[] want = pattern(256 * 64);

		// 1: plain blocking connect
		try (Socket s = new Socket()) {
			s.connect(dst);
			s.getOutputStream().write(want);
			s.shutdownOutput();
			byte[] got = s.getInputStream().readAllBytes();
			System.out.println("blocking: peer " + s.getRemoteSocketAddress()
				+ " sent " + want.length + " got " + got.length
				+ " same " + Arrays.equals(want, got));
		}
		// 2: connect with a timeout: the JDK connects non-blocking and polls
		try (Socket s = new Socket()) {
			s.setSoTimeout(5000);
			s.connect(dst, 5000);
			OutputStream o = s.getOutputStream();
			String line = "line\u00e9";
			o.write((line + "\n").getBytes("UTF-8"));
			o.flush();
			BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), "UTF-8"));
			// compared here: what System.out does with non-ASCII depends on the locale
			System.out.println("timeout: peer " + s.getInetAddress().getHostAddress() + ":" + s.getPort()
				+ " connected " + s.isConnected() + " echo same " + line.equals(r.readLine()));
		}
	}

	static void http(String url) throws Exception {
		HttpClient c = HttpClient.newBuilder()
			.version(HttpClient.Version.HTTP_1_1)
			.connectTimeout(Duration.ofSeconds(5))
			.build();
		for (String path : new String[] { "hello.txt", "missing" }) {
			HttpRequest req = HttpRequest.newBuilder(URI.create(url + path))
				.timeout(Duration.ofSeconds(5)).build();
			HttpResponse<String> resp = c.send(req, HttpResponse.BodyHandlers.ofString());
			String body = resp.statusCode() == 200 ? resp.body() : "";
			System.out.println("GET /" + path + " " + resp.statusCode() + " " + body.strip());
		}
		// the same client, concurrently: each request a connection of its own
		var futures = new java.util.ArrayList<java.util.concurrent.CompletableFuture<HttpResponse<String>>>();
		for (int i = 0; i < 8; i++)
			futures.add(c.sendAsync(HttpRequest.newBuilder(URI.create(url + "hello.txt"))
				.timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString()));
		int ok = 0;
		for (var f : futures)
			if (f.get().statusCode() == 200 && f.get().body().equals("hello from a file\n"))
				ok++;
		System.out.println("async 8: " + ok + " ok");
	}

	static void nio(String host, int port) throws Exception {
		try (Selector sel = Selector.open(); SocketChannel ch = SocketChannel.open()) {
			ch.configureBlocking(false);
			boolean now = ch.connect(new InetSocketAddress(host, port));
			if (!now) {
				ch.register(sel, SelectionKey.OP_CONNECT);
				if (sel.select(5000) != 1)
					throw new IOException("no OP_CONNECT in 5 s");
				sel.selectedKeys().clear();
				if (!ch.finishConnect())
					throw new IOException("finishConnect false after OP_CONNECT");
			}
			System.out.println("connected: peer " + ch.getRemoteAddress());
			ByteBuffer out = ByteBuffer.wrap(pattern(256 * 1024));
			ByteBuffer in = ByteBuffer.allocate(out.capacity());
			SelectionKey k = ch.register(sel, SelectionKey.OP_READ | SelectionKey.OP_WRITE);
			while (in.hasRemaining()) {
				if (sel.select(5000) == 0)
					throw new IOException("selector idle 5 s, got " + in.position());
				sel.selectedKeys().clear();
				if (k.isWritable() && out.hasRemaining()) {
					ch.write(out);
					if (!out.hasRemaining())
						k.interestOps(SelectionKey.OP_READ);
				}
				if (k.isReadable() && ch.read(in) < 0)
					throw new IOException("EOF after " + in.position());
			}
			System.out.println("selector: sent " + out.position() + " got " + in.position()
				+ " same " + Arrays.equals(out.array(), in.array()));
		}
	}

	static void burst(String host, int port, int n, String gate) throws Exception {
		InetSocketAddress dst = new InetSocketAddress(host, port);
		Selector sel = Selector.open();
		SocketChannel[] ch = new SocketChannel[n];
		ByteBuffer[] in = new ByteBuffer[n];
		int connected = 0, echoed = 0, open = n;
		for (int i = 0; i < n; i++) {
			ch[i] = SocketChannel.open();
			ch[i].configureBlocking(false);
			in[i] = ByteBuffer.allocate(64);
			if (ch[i].connect(dst)) {
				connected++;
				ch[i].write(ByteBuffer.wrap(("conn " + i + "\n").getBytes("US-ASCII")));
				ch[i].register(sel, SelectionKey.OP_READ, i);
			} else {
				ch[i].register(sel, SelectionKey.OP_CONNECT, i);
			}
		}
		long start = System.nanoTime();
		boolean gated = false;
		while (open > 0) {
			if (!gated && System.nanoTime() - start > 500_000_000L) {
				System.out.println("connected before accept: fewer than " + n + " " + (connected < n));
				java.nio.file.Files.writeString(java.nio.file.Path.of(gate), "");
				gated = true;
			}
			if (sel.select(gated ? 10000 : 100) == 0 && gated)
				throw new IOException("selector idle 10 s with " + open + " open");
			for (SelectionKey k : sel.selectedKeys()) {
				int i = (Integer) k.attachment();
				if (k.isConnectable()) {
					ch[i].finishConnect();
					connected++;
					ch[i].write(ByteBuffer.wrap(("conn " + i + "\n").getBytes("US-ASCII")));
					k.interestOps(SelectionKey.OP_READ);
				} else if (k.isReadable()) {
					int r = ch[i].read(in[i]);
					String got = new String(in[i].array(), 0, in[i].position(), "US-ASCII");
					if (r < 0 || got.endsWith("\n")) {
						if (got.equals("conn " + i + "\n"))
							echoed++;
						k.cancel();
						ch[i].close();
						open--;
					}
				}
			}
			sel.selectedKeys().clear();
		}
		System.out.println("connections " + n + " connected " + connected + " echoed " + echoed);
	}

	static byte[] dnsQuery(String name) throws IOException {
		ByteArrayOutputStream q = new ByteArrayOutputStream();
		q.write(new byte[] { 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0 });
		for (String l : name.split("\\.")) {
			q.write(l.length());
			q.write(l.getBytes("US-ASCII"));
		}
		q.write(new byte[] { 0, 0, 1, 0, 1 });
		return q.toByteArray();
	}

	static String lastA(byte[] b, int n) {
		return (b[n - 4] & 255) + "." + (b[n - 3] & 255) + "." + (b[n - 2] & 255) + "." + (b[n - 1] & 255);
	}

	static void udp(String host, int port) throws Exception {
		InetSocketAddress dst = new InetSocketAddress(host, port);
		try (DatagramSocket s = new DatagramSocket()) {
			s.setSoTimeout(5000);
			byte[] q = dnsQuery("java.example");
			s.send(new DatagramPacket(q, q.length, dst));
			DatagramPacket p = new DatagramPacket(new byte[512], 512);
			s.receive(p);
			System.out.println("DatagramSocket: from " + p.getSocketAddress() + " " + p.getLength()
				+ " bytes, id " + Integer.toHexString(((p.getData()[0] & 255) << 8) | (p.getData()[1] & 255))
				+ " A " + lastA(p.getData(), p.getLength()));
		}
		try (Selector sel = Selector.open(); DatagramChannel ch = DatagramChannel.open()) {
			ch.connect(dst);
			ch.configureBlocking(false);
			ch.register(sel, SelectionKey.OP_READ);
			ch.write(ByteBuffer.wrap(dnsQuery("nio.example")));
			if (sel.select(5000) != 1)
				throw new IOException("no reply in 5 s");
			ByteBuffer r = ByteBuffer.allocate(512);
			int n = ch.read(r);
			System.out.println("DatagramChannel: peer " + ch.getRemoteAddress() + " " + n
				+ " bytes, A " + lastA(r.array(), n));
		}
	}

	static void httpserver(int port, String ready) throws Exception {
		var srv = com.sun.net.httpserver.HttpServer.create(new InetSocketAddress(port), 16);
		srv.createContext("/", ex -> {
			byte[] b = ("java saw " + ex.getRequestMethod() + " " + ex.getRequestURI()
				+ " peer " + ex.getRemoteAddress().getAddress().getHostAddress()
				+ ":" + ex.getRemoteAddress().getPort()
				+ " local " + ex.getLocalAddress().getAddress().getHostAddress()
				+ ":" + ex.getLocalAddress().getPort() + "\n").getBytes("UTF-8");
			ex.sendResponseHeaders(200, b.length);
			try (OutputStream o = ex.getResponseBody()) {
				o.write(b);
			}
		});
		srv.start();
		java.nio.file.Files.writeString(java.nio.file.Path.of(ready), "ready\n");
	}

	public static void main(String[] a) throws Exception {
		switch (a[0]) {
		case "socket": socket(a[1], Integer.parseInt(a[2])); break;
		case "http": http(a[1]); break;
		case "nio": nio(a[1], Integer.parseInt(a[2])); break;
		case "burst": burst(a[1], Integer.parseInt(a[2]), Integer.parseInt(a[3]), a[4]); break;
		case "udp": udp(a[1], Integer.parseInt(a[2])); break;
		case "httpserver": httpserver(Integer.parseInt(a[1]), a[2]); break;
		default: throw new IllegalArgumentException(a[0]);
		}
	}
}
