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
        RequireRoot("only root can start a JVM as another user");
        var jvm = await StartWrappedAsync("IdleService", "setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        var status = ProcessStatus.Parse(File.ReadAllText($"/proc/{jvm.Id}/status"), jvm.Id);
        Assert.Equal(65534, status.EffectiveUid);

        var output = await _client.JcmdAsync(jvm.Id, "GC.finalizer_info", RequestTimeout, default);
        FinalizerInfoParser.Parse(output);
    }

    [Fact]
    public async Task Jvm_in_its_own_pid_and_mount_namespace_answers_through_its_root_and_namespace_pid()
    {
        RequireRoot("unshare needs root to create pid and mount namespaces");
        // A container as the kernel sees it: the JVM is pid 1 of a new pid namespace and has a /tmp of its own
        // (a directory of ours bound over /tmp inside its mount namespace), so its hsperfdata file and attach
        // socket are only reachable from here through /proc/<host pid>/root/tmp, named by its namespace pid.
        var containerTmp = Directory.CreateTempSubdirectory("apm-container-tmp-");
        Process? unshare = null;
        try
        {
            CopyDirectory(await ClassDirAsync(), Path.Combine(containerTmp.FullName, "classes"));
            unshare = await StartReadyAsync("unshare",
                ["--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", "mount --bind \"$0\" /tmp && exec \"$@\"", containerTmp.FullName,
                 "java", "-cp", "/tmp/classes", .. SmallHeap, "IdleService"]);
            var hostPid = int.Parse(File.ReadAllText($"/proc/{unshare.Id}/task/{unshare.Id}/children").Trim(), CultureInfo.InvariantCulture);
            var status = ProcessStatus.Parse(File.ReadAllText($"/proc/{hostPid}/status"), hostPid);
            Assert.Equal(1, status.NamespacePid);

            var output = await _client.JcmdAsync(hostPid, "GC.finalizer_info", RequestTimeout, default);

            Assert.Contains("instances waiting for finalization", output, StringComparison.Ordinal);
            FinalizerInfoParser.Parse(output);
            Assert.True(File.Exists(Path.Combine(containerTmp.FullName, ".java_pid1")), "the JVM's socket is in its own /tmp, named by its namespace pid");
            Assert.False(File.Exists("/tmp/.java_pid" + hostPid.ToString(CultureInfo.InvariantCulture)));
            Assert.False(File.Exists(Path.Combine(Environment.CurrentDirectory, ".attach_pid1")), "the trigger file was removed");
            Assert.Contains("JDK", await _client.JcmdAsync(hostPid, "VM.version", RequestTimeout, default), StringComparison.Ordinal);
        }
        finally
        {
            if (unshare != null) new Killer(unshare).Dispose(); // before the directory goes: the JVM writes into it
            containerTmp.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Fake_listeners_on_a_real_jvms_socket_path_are_protocol_errors_that_never_block_another_jvm()
    {
        // A JVM that never opens its own socket, so the path is free for a listener that is not HotSpot's.
        using var deaf = await StartAsync("IdleService", "-XX:+DisableAttachMechanism");
        using var healthy = await StartAsync("SlowFinalizer");

        // Garbage, then silence with the connection held open: judged at its first line, not at the timeout.
        using (var garbage = FakeListener.StartHoldingOpen(deaf.Pid, Encoding.ASCII.GetBytes("SSH-2.0-OpenSSH_9.2\r\n")))
        {
            var request = _client.JcmdAsync(deaf.Pid, "GC.finalizer_info", RequestTimeout, default);
            var other = _client.JcmdAsync(healthy.Pid, "GC.finalizer_info", RequestTimeout, default);
            var e = await Assert.ThrowsAsync<AttachException>(() => request);
            Assert.Equal(AttachFailure.ProtocolError, e.Reason);
            Assert.Contains("not an attach response", e.Message, StringComparison.Ordinal);
            Assert.Contains("SSH-2.0-OpenSSH_9.2", e.Message, StringComparison.Ordinal);
            Assert.Contains("instances waiting for finalization", await other, StringComparison.Ordinal);
            Assert.Equal("1\0jcmd\0GC.finalizer_info\0\0\0", Encoding.UTF8.GetString(await garbage.Request));
        }

        // A valid status line, then bytes without end: stops at the byte limit, with memory bounded by it.
        const int limit = 1024 * 1024;
        var small = new HotSpotAttachClient(maxResponseBytes: limit);
        using (var endless = FakeListener.StartEndless(deaf.Pid, "0\n"u8.ToArray()))
        {
            var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            var request = small.JcmdAsync(deaf.Pid, "GC.finalizer_info", RequestTimeout, default);
            var other = _client.JcmdAsync(healthy.Pid, "GC.finalizer_info", RequestTimeout, default);
            var e = await Assert.ThrowsAsync<AttachException>(() => request);
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            Assert.Equal(AttachFailure.ProtocolError, e.Reason);
            Assert.Contains("exceeds the 1048576-byte limit", e.Message, StringComparison.Ordinal);
            Assert.Contains("instances waiting for finalization", await other, StringComparison.Ordinal);
            await endless.Request; // the listener saw the client hang up
            Assert.True(endless.BytesSent > limit, $"the listener sent {endless.BytesSent} bytes");
            Assert.True(allocated < 8L * limit, $"the request allocated {allocated} bytes against a {limit}-byte limit");
        }

        Assert.False(deaf.HasExited);
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
    private async Task<Process> StartWrappedAsync(string mainClass, string wrapper, string[] wrapperArgs, params string[] extraOptions) =>
        await StartReadyAsync(wrapper, [.. wrapperArgs, "java", "-cp", await ClassDirAsync(), .. SmallHeap, .. extraOptions, mainClass]);

    /// <summary>Starts a command that ends in a fixture JVM and waits for its READY line; killed at test end.</summary>
    private async Task<Process> StartReadyAsync(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        var process = Process.Start(psi) ?? throw new InvalidOperationException(file + " did not start");
        _cleanup.Add(new Killer(process));
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(Startup);
        Assert.Equal("READY", line);
        return process;
    }

    /// <summary>Fails (never skips) a test that only a root runner can carry out.</summary>
    private static void RequireRoot(string why)
    {
        var self = ProcessStatus.Parse(File.ReadAllText("/proc/self/status"), Environment.ProcessId);
        Assert.True(self.EffectiveUid == 0, $"this test must run as root ({why}); it runs as uid {self.EffectiveUid}");
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
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
                JavaFixture.DeleteAttachSocket(process.Id);
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
        }
    }

    /// <summary>
    /// A real Unix socket server at /tmp/.java_pid&lt;pid&gt; that records one request and answers it: fixed bytes and
    /// EOF, fixed bytes and then silence until the client hangs up, or fixed bytes and then zeros without end.
    /// </summary>
    private sealed class FakeListener : IDisposable
    {
        private readonly Socket _listener;
        private readonly string _path;
        private long _bytesSent;

        private FakeListener(Socket listener, string path)
        {
            _listener = listener;
            _path = path;
        }

        /// <summary>The request bytes; completes once the answer is over (for the open-ended answers: once the client hung up).</summary>
        public Task<byte[]> Request { get; private set; } = Task.FromResult(Array.Empty<byte>());

        public long BytesSent => Interlocked.Read(ref _bytesSent);

        public static FakeListener Start(int pid, byte[] answer) => Start(pid, async (peer, self) =>
        {
            await self.SendAsync(peer, answer);
            peer.Shutdown(SocketShutdown.Send);
        });

        public static FakeListener StartHoldingOpen(int pid, byte[] answer) => Start(pid, async (peer, self) =>
        {
            await self.SendAsync(peer, answer);
            // Nothing more, and no EOF: wait for the client to close.
            while (await peer.ReceiveAsync(new byte[64], SocketFlags.None) > 0)
            {
            }
        });

        public static FakeListener StartEndless(int pid, byte[] prefix) => Start(pid, async (peer, self) =>
        {
            await self.SendAsync(peer, prefix);
            var chunk = new byte[64 * 1024];
            while (true) await self.SendAsync(peer, chunk);
        });

        public void Dispose()
        {
            _listener.Dispose();
            File.Delete(_path);
        }

        private static FakeListener Start(int pid, Func<Socket, FakeListener, Task> answer)
        {
            var path = "/tmp/.java_pid" + pid.ToString(CultureInfo.InvariantCulture);
            File.Delete(path);
            var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            var fake = new FakeListener(listener, path);
            fake.Request = fake.ServeAsync(answer);
            return fake;
        }

        private async Task SendAsync(Socket peer, byte[] bytes)
        {
            var sent = await peer.SendAsync(bytes, SocketFlags.None);
            Interlocked.Add(ref _bytesSent, sent);
        }

        private async Task<byte[]> ServeAsync(Func<Socket, FakeListener, Task> answer)
        {
            using var peer = await _listener.AcceptAsync();
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
                await answer(peer, this);
            }
            catch (SocketException)
            {
                // The client hung up: at its byte limit, or once it judged the answer.
            }

            return [.. received];
        }
    }
}
