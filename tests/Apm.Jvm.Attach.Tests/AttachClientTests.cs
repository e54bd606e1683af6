using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Apm.Jvm.Attach;
using Apm.Testing;

namespace Apm.Jvm.Attach.Tests;

/// <summary>The attach client against real JVMs (and real non-JVM processes), each failure reason included.</summary>
public sealed class AttachClientTests : IDisposable
{
    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    private static readonly string[] SmallHeap = ["-Xmx256m"];
    private readonly HotSpotAttachClient _client = new();
    private readonly List<IDisposable> _cleanup = [];

    public void Dispose()
    {
        foreach (var d in _cleanup) d.Dispose();
    }

    [Fact]
    public async Task Finalizer_info_through_the_client_matches_jcmd_and_its_pending_count_moves()
    {
        using var jvm = await StartAsync("SlowFinalizer");
        // Wait until a GC has found some of the slowly finalized objects.
        var ours = await WaitForAsync(async () => FinalizerInfoParser.Parse(await _client.JcmdAsync(jvm.Pid, "GC.finalizer_info", RequestTimeout, default)),
            i => i.Classes.Any(c => c.ClassName == "SlowFinalizerResource"));
        var theirs = FinalizerInfoParser.Parse(jvm.Jcmd("GC.finalizer_info"));

        Assert.Contains(theirs.Classes, c => c.ClassName == "SlowFinalizerResource");
        Assert.Equal(theirs.Classes.Select(c => c.ClassName).Order(), ours.Classes.Select(c => c.ClassName).Order());
        Assert.True(ours.PendingTotal > 0);

        // The queue only changes at collections and as the Finalizer thread works: sample until it moves.
        var later = await WaitForAsync(async () => FinalizerInfoParser.Parse(await _client.JcmdAsync(jvm.Pid, "GC.finalizer_info", RequestTimeout, default)),
            i => i.PendingTotal != ours.PendingTotal);
        Assert.NotEqual(ours.PendingTotal, later.PendingTotal);
    }

    [Fact]
    public async Task Healthy_service_has_finalizable_objects_registered_but_no_lasting_backlog()
    {
        using var jvm = await StartAsync("HealthyService");
        await Task.Delay(2000);
        var info = FinalizerInfoParser.Parse(await _client.JcmdAsync(jvm.Pid, "GC.finalizer_info", RequestTimeout, default));
        var histogram = ClassHistogramParser.Parse(await _client.JcmdAsync(jvm.Pid, "GC.class_histogram", RequestTimeout, default));

        // The histogram's full GC lets the Finalizer thread catch up; finalize() is quick, so the queue stays small.
        Assert.True(info.PendingTotal < 20_000, $"pending {info.PendingTotal}");
        Assert.Contains(histogram.Rows, r => r.ClassName == "java.lang.ref.Finalizer");
    }

    [Fact]
    public async Task Class_histogram_through_the_client_shows_the_finalizer_chain()
    {
        using var jvm = await StartAsync("SlowFinalizer");
        await Task.Delay(1000);
        var h = ClassHistogramParser.Parse(await _client.JcmdAsync(jvm.Pid, "GC.class_histogram", RequestTimeout, default));

        var finalizer = Assert.Single(h.Rows, r => r.ClassName == "java.lang.ref.Finalizer");
        var resource = Assert.Single(h.Rows, r => r.ClassName == "SlowFinalizerResource");
        Assert.Equal("java.base", finalizer.Module?.Split('@')[0]);
        Assert.Null(resource.Module);
        Assert.True(resource.Instances > 0);
        Assert.True(finalizer.Instances >= resource.Instances);
        Assert.Equal(h.TotalInstances, h.Rows.Sum(r => r.Instances));
        Assert.Equal(h.TotalBytes, h.Rows.Sum(r => r.Bytes));
    }

    [Fact]
    public async Task Removed_socket_is_recreated_by_a_new_handshake_and_the_trigger_file_is_cleaned_up()
    {
        using var jvm = await StartAsync("IdleService");
        await _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, default);
        RemoveAttachSocket(jvm.Pid); // what a /tmp cleaner does to long-running JVMs

        Assert.Contains("JDK", await _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, default), StringComparison.Ordinal);
        var trigger = ".attach_pid" + jvm.Pid.ToString(CultureInfo.InvariantCulture);
        Assert.False(File.Exists(Path.Combine(Environment.CurrentDirectory, trigger)));
        Assert.False(File.Exists(Path.Combine("/tmp", trigger)));
    }

    [Fact]
    public async Task Regular_file_in_place_of_the_socket_times_out_with_that_cause()
    {
        using var jvm = await StartAsync("IdleService");
        await _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, default);
        RemoveAttachSocket(jvm.Pid);
        var path = "/tmp/.java_pid" + jvm.Pid.ToString(CultureInfo.InvariantCulture);
        await File.WriteAllTextAsync(path, "stale");
        try
        {
            var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(jvm.Pid, "VM.version", TimeSpan.FromSeconds(3), default));
            Assert.Equal(AttachFailure.Timeout, e.Reason);
            Assert.Contains("is not a socket", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Raw_execute_returns_status_zero_and_system_properties()
    {
        using var jvm = await StartAsync("IdleService");
        var r = await _client.ExecuteAsync(jvm.Pid, "properties", [], RequestTimeout, default);
        Assert.Equal(0, r.Status);
        Assert.Contains("java.vm.name=", r.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_diagnostic_command_is_command_failed_with_the_jvm_message()
    {
        using var jvm = await StartAsync("IdleService");
        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(jvm.Pid, "No.such_command", RequestTimeout, default));
        Assert.Equal(AttachFailure.CommandFailed, e.Reason);
        Assert.Contains("No.such_command", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Jvm_started_with_attach_disabled_is_reported_as_such_without_a_timeout()
    {
        using var jvm = await StartAsync("IdleService", "-XX:+DisableAttachMechanism");
        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(jvm.Pid, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.AttachDisabled, e.Reason);
        Assert.Contains("DisableAttachMechanism", e.Message, StringComparison.Ordinal);
        Assert.False(jvm.HasExited);
    }

    [Fact]
    public async Task Hsperfdata_capability_says_whether_attach_is_enabled()
    {
        using var enabled = await StartAsync("IdleService");
        using var disabled = await StartAsync("IdleService", "-XX:+DisableAttachMechanism");
        await enabled.WaitForPerfDataAsync(Startup);
        await disabled.WaitForPerfDataAsync(Startup);
        Assert.True(JvmCapabilities.TryReadAttachSupported("/tmp", enabled.Pid));
        Assert.False(JvmCapabilities.TryReadAttachSupported("/tmp", disabled.Pid));
    }

    [Fact]
    public async Task Jvm_that_ignores_sigquit_is_reported_with_the_cause()
    {
        // A background job of a non-interactive shell inherits SIGQUIT as ignored. JDK 17 installs its own
        // handler over that unless it runs with -Xrs; with -Xrs it opens its attach socket at startup
        // instead, so the deaf case is such a JVM whose socket file was removed (a /tmp cleaner does that).
        var jvm = await StartWrappedAsync("IdleService", "bash", ["-c", "trap '' QUIT; exec \"$@\"", "bash"], "-Xrs");
        Assert.True(ProcessStatus.Parse(File.ReadAllText($"/proc/{jvm.Id}/status"), jvm.Id).IgnoresSigquit);
        RemoveAttachSocket(jvm.Id);

        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(jvm.Id, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.SigquitIgnored, e.Reason);
        Assert.Contains("the JVM ignores SIGQUIT", e.Message, StringComparison.Ordinal);
        Assert.Contains("set -m", e.Message, StringComparison.Ordinal);
        Assert.False(jvm.HasExited);
    }

    [Fact]
    public async Task Jvm_without_a_sigquit_handler_is_not_signalled_because_sigquit_would_kill_it()
    {
        using var jvm = await StartAsync("IdleService", "-Xrs");
        RemoveAttachSocket(jvm.Pid);
        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(jvm.Pid, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.AttachDisabled, e.Reason);
        Assert.Contains("-Xrs", e.Message, StringComparison.Ordinal);
        await Task.Delay(200);
        Assert.False(jvm.HasExited);
    }

    [Fact]
    public async Task Jvm_with_reduced_signals_answers_through_the_socket_it_opened_at_startup()
    {
        using var jvm = await StartAsync("IdleService", "-Xrs");
        Assert.Contains("JDK", await _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, default), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Background_jvm_of_a_non_interactive_shell_answers_once_it_installed_its_handler()
    {
        // `java ... &` from sh: SIGQUIT starts out ignored, and JDK 17 replaces that with its own handler.
        var psi = new ProcessStartInfo("sh") { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"java -cp '{await ClassDirAsync()}' -Xmx256m IdleService >/dev/null 2>&1 & echo $!");
        using var shell = Process.Start(psi) ?? throw new InvalidOperationException("sh did not start");
        var pid = int.Parse((await shell.StandardOutput.ReadLineAsync())!, CultureInfo.InvariantCulture);
        var jvm = Process.GetProcessById(pid); // owned and killed by _cleanup
        _cleanup.Add(new Killer(jvm));
        // As the collector would: act once the JVM's hsperfdata file shows it (the client also copes earlier).
        await WaitForAsync(() => Task.FromResult(File.Exists($"/tmp/hsperfdata_{Environment.UserName}/{pid}")), found => found);

        var version = await _client.JcmdAsync(pid, "VM.version", RequestTimeout, default);
        Assert.Contains("JDK", version, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Process_that_is_not_a_jvm_is_reported_and_not_signalled()
    {
        var sleep = StartProcess("sleep", "60");
        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(sleep.Id, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.NotAJvm, e.Reason);
        // SIGQUIT's default action would have killed it.
        await Task.Delay(200);
        Assert.False(sleep.HasExited);
    }

    [Fact]
    public async Task Pid_that_does_not_exist_is_process_not_found()
    {
        var pidMax = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), CultureInfo.InvariantCulture);
        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(pidMax + 1, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.ProcessNotFound, e.Reason);
        Assert.Equal(pidMax + 1, e.Pid);
    }

    [Fact]
    public async Task Jvm_killed_mid_request_is_process_exited()
    {
        using var jvm = await StartAsync("IdleService");
        await _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, default); // the listener is up
        // Stop the JVM so the request is certainly in flight (connected, written, unanswered), then kill it.
        Signal(jvm.Pid, "STOP");
        var request = _client.JcmdAsync(jvm.Pid, "GC.heap_info", RequestTimeout, default);
        await Task.Delay(500);
        Assert.False(request.IsCompleted);
        jvm.Process.Kill();

        var e = await Assert.ThrowsAsync<AttachException>(() => request);
        Assert.True(e.Reason == AttachFailure.ProcessExited, e.Reason + ": " + e.Message);
    }

    [Fact]
    public async Task Jvm_killed_during_a_heap_dump_is_process_exited()
    {
        using var jvm = await StartAsync("SlowFinalizer");
        await Task.Delay(1000);
        var file = Path.Combine(Path.GetTempPath(), "apm-attach-test-" + Guid.NewGuid().ToString("N") + ".hprof");
        try
        {
            var request = _client.JcmdAsync(jvm.Pid, "GC.heap_dump " + file, RequestTimeout, default);
            // Kill as soon as the dump has started (the file appears) or, on a very fast dump, after it.
            await WaitForAsync(() => Task.FromResult(File.Exists(file) || request.IsCompleted), done => done);
            jvm.Process.Kill();
            try
            {
                await request;
                // The dump won the race: nothing was in flight to lose; the next request must see the exit.
                var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(jvm.Pid, "GC.finalizer_info", RequestTimeout, default));
                Assert.Contains(e.Reason, new[] { AttachFailure.ProcessExited, AttachFailure.ProcessNotFound });
            }
            catch (AttachException e)
            {
                Assert.Equal(AttachFailure.ProcessExited, e.Reason);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Garbage_on_the_attach_socket_is_a_protocol_error()
    {
        var sleep = StartProcess("sleep", "60");
        using var server = FakeListener.Start(sleep.Id, Encoding.ASCII.GetBytes("HTTP/1.1 400 Bad Request\r\n\r\n"));
        var e = await Assert.ThrowsAsync<AttachException>(() => _client.JcmdAsync(sleep.Id, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.ProtocolError, e.Reason);
        Assert.Contains("HTTP/1.1 400", e.Message, StringComparison.Ordinal);
        Assert.Equal("1\0jcmd\0GC.finalizer_info\0\0\0", Encoding.UTF8.GetString(await server.Request));
    }

    [Fact]
    public async Task Endless_answer_stops_at_the_byte_limit_with_a_protocol_error()
    {
        var sleep = StartProcess("sleep", "60");
        using var server = FakeListener.Start(sleep.Id, [.. "0\n"u8, .. new byte[4 * 1024 * 1024]]);
        var small = new HotSpotAttachClient(maxResponseBytes: 64 * 1024);
        var e = await Assert.ThrowsAsync<AttachException>(() => small.JcmdAsync(sleep.Id, "GC.finalizer_info", RequestTimeout, default));
        Assert.Equal(AttachFailure.ProtocolError, e.Reason);
        Assert.Contains("limit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stuck_jvm_times_out_without_delaying_a_request_to_another()
    {
        using var stuck = await StartAsync("IdleService");
        using var healthy = await StartAsync("SlowFinalizer");
        await _client.JcmdAsync(stuck.Pid, "VM.version", RequestTimeout, default);
        Signal(stuck.Pid, "STOP");
        try
        {
            var stuckRequest = _client.JcmdAsync(stuck.Pid, "GC.finalizer_info", TimeSpan.FromSeconds(5), default);
            var healthyRequest = _client.JcmdAsync(healthy.Pid, "GC.finalizer_info", RequestTimeout, default);

            var first = await Task.WhenAny(stuckRequest, healthyRequest);
            Assert.Same(healthyRequest, first);
            FinalizerInfoParser.Parse(await healthyRequest);

            var e = await Assert.ThrowsAsync<AttachException>(() => stuckRequest);
            Assert.Equal(AttachFailure.Timeout, e.Reason);
            Assert.Contains("stopped", e.Message, StringComparison.Ordinal);
            Assert.Contains("waiting for the response", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Signal(stuck.Pid, "CONT");
        }
    }

    [Fact]
    public async Task Cancellation_surfaces_as_operation_canceled_not_as_timeout()
    {
        using var jvm = await StartAsync("IdleService");
        await _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, default);
        Signal(jvm.Pid, "STOP");
        try
        {
            using var cts = new CancellationTokenSource();
            var request = _client.JcmdAsync(jvm.Pid, "VM.version", RequestTimeout, cts.Token);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        }
        finally
        {
            Signal(jvm.Pid, "CONT");
        }
    }

    [Fact]
    public async Task Root_collector_attaches_to_a_jvm_of_another_user_without_switching_credentials()
    {
        if (Environment.UserName != "root") return; // Only a root runner can start a JVM as another user.
        var jvm = await StartWrappedAsync("IdleService", "setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        var status = ProcessStatus.Parse(File.ReadAllText($"/proc/{jvm.Id}/status"), jvm.Id);
        Assert.Equal(65534, status.EffectiveUid);

        var output = await _client.JcmdAsync(jvm.Id, "GC.finalizer_info", RequestTimeout, default);
        FinalizerInfoParser.Parse(output);
    }

    private static async Task<JavaFixture> StartAsync(string mainClass, params string[] extraOptions)
    {
        var jvm = JavaFixture.Start(mainClass, [.. SmallHeap, .. extraOptions]);
        try
        {
            await jvm.WaitForOutputAsync("READY", Startup);
            return jvm;
        }
        catch
        {
            jvm.Dispose();
            throw;
        }
    }

    /// <summary>Starts a fixture JVM under a wrapper command (a signal mask or another user) and waits for READY; killed at test end (do not dispose it).</summary>
    private async Task<Process> StartWrappedAsync(string mainClass, string wrapper, string[] wrapperArgs, params string[] extraOptions)
    {
        var classDir = await ClassDirAsync();

        var psi = new ProcessStartInfo(wrapper) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in wrapperArgs) psi.ArgumentList.Add(a);
        string[] javaCommand = ["java", "-cp", classDir, .. SmallHeap, .. extraOptions, mainClass];
        foreach (var a in javaCommand) psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException(wrapper + " did not start");
        _cleanup.Add(new Killer(process));
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(Startup);
        Assert.Equal("READY", line);
        return process;
    }

    /// <summary>The compiled fixture classes live where JavaFixture put them: borrow the -cp of a fixture JVM.</summary>
    private static async Task<string> ClassDirAsync()
    {
        using var probe = JavaFixture.Start("IdleService", SmallHeap);
        await probe.WaitForOutputAsync("READY", Startup);
        return probe.Process.StartInfo.ArgumentList[1];
    }

    /// <summary>Starts a plain process that the test's cleanup kills (do not dispose it).</summary>
    private Process StartProcess(string file, string arg)
    {
        var process = Process.Start(new ProcessStartInfo(file, arg) { UseShellExecute = false }) ?? throw new InvalidOperationException(file);
        _cleanup.Add(new Killer(process));
        return process;
    }

    private static void RemoveAttachSocket(int pid)
    {
        var path = "/tmp/.java_pid" + pid.ToString(CultureInfo.InvariantCulture);
        Assert.True(File.Exists(path), "the attach socket exists before it is removed");
        File.Delete(path);
    }

    private static void Signal(int pid, string signal) => JavaFixture.RunTool("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)]);

    private static async Task<T> WaitForAsync<T>(Func<Task<T>> sample, Func<T, bool> done)
    {
        T value;
        var attempts = 0;
        while (!done(value = await sample()))
        {
            if (++attempts > 300) throw new TimeoutException("condition not reached; last value " + value);
            await Task.Delay(100);
        }

        return value;
    }

    private sealed class Killer(Process process) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                if (!process.HasExited) process.Kill(true);
                process.WaitForExit(10_000);
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
        }
    }

    /// <summary>A real Unix socket server at /tmp/.java_pid&lt;pid&gt; that records one request and sends fixed bytes.</summary>
    private sealed class FakeListener : IDisposable
    {
        private readonly Socket _listener;
        private readonly string _path;

        private FakeListener(Socket listener, string path, Task<byte[]> request)
        {
            _listener = listener;
            _path = path;
            Request = request;
        }

        public Task<byte[]> Request { get; }

        public static FakeListener Start(int pid, byte[] answer)
        {
            var path = "/tmp/.java_pid" + pid.ToString(CultureInfo.InvariantCulture);
            File.Delete(path);
            var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            return new FakeListener(listener, path, ServeAsync(listener, answer));
        }

        public void Dispose()
        {
            _listener.Dispose();
            File.Delete(_path);
        }

        private static async Task<byte[]> ServeAsync(Socket listener, byte[] answer)
        {
            using var peer = await listener.AcceptAsync();
            var received = new List<byte>();
            var buffer = new byte[256];
            var nuls = 0;
            while (nuls < 5)
            {
                var n = await peer.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0) break;
                for (var i = 0; i < n; i++)
                {
                    received.Add(buffer[i]);
                    if (buffer[i] == 0) nuls++;
                }
            }

            try
            {
                await peer.SendAsync(answer, SocketFlags.None);
                peer.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // The client may hang up at its byte limit.
            }

            return [.. received];
        }
    }
}
