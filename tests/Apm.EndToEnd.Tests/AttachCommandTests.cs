using System.Diagnostics;
using System.Globalization;
using Apm.Jvm.Attach;
using Apm.Testing;

namespace Apm.EndToEnd.Tests;

/// <summary>
/// <c>apm attach</c>, the jcmd that needs no JDK, run as a real process against real JVMs: output and exit code 0 on
/// success, and for each failure its own exit code with the reason on stderr, including the permission error of a
/// user who is neither the JVM's nor root.
/// </summary>
public sealed class AttachCommandTests : IDisposable
{
    private static readonly TimeSpan Startup = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ApmRun = TimeSpan.FromMinutes(2);

    // Runs the client as the unprivileged "nobody" with no supplementary groups; HOME is where nobody may look.
    private static readonly string[] AsNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    private static readonly Dictionary<string, string> NobodyEnvironment = new() { ["HOME"] = "/", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
    private readonly List<IDisposable> _cleanup = [];

    public void Dispose()
    {
        foreach (var d in _cleanup) d.Dispose();
    }

    [Fact]
    public async Task Attach_prints_the_finalization_queue_of_a_real_jvm_and_exits_zero()
    {
        var jvm = await StartJvmAsync("SlowFinalizer");
        // The queue fills at collections: ask until it shows the slowly finalized class, as jcmd would show it.
        string output = "";
        for (var attempt = 0; attempt < 30 && !output.Contains("SlowFinalizerResource", StringComparison.Ordinal); attempt++)
        {
            var (code, stdout, errors) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", Pid(jvm), "GC.finalizer_info");
            Assert.True(code == 0, $"exit {code}: {errors}");
            Assert.Equal("", errors.Trim());
            output = stdout;
        }

        Assert.Contains("Unreachable instances waiting for finalization", output, StringComparison.Ordinal);
        var info = FinalizerInfoParser.Parse(output);
        Assert.Contains(info.Classes, c => c.ClassName == "SlowFinalizerResource");
        Assert.Contains(jvm.Jcmd("GC.finalizer_info").Split('\n'), l => l.Contains("SlowFinalizerResource", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Attach_passes_the_whole_command_line_and_reports_a_refused_command_with_exit_one()
    {
        var jvm = await StartJvmAsync("IdleService");
        // Only "VM.flags -all" lists flags left at their defaults, such as DisableAttachMechanism.
        var (code, output, errors) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", "--timeout", "20", Pid(jvm), "VM.flags", "-all");
        Assert.True(code == 0, $"exit {code}: {errors}");
        Assert.Contains("DisableAttachMechanism", output, StringComparison.Ordinal);
        (_, output, _) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", Pid(jvm), "VM.flags");
        Assert.DoesNotContain("DisableAttachMechanism", output, StringComparison.Ordinal);

        (code, _, errors) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", Pid(jvm), "No.such_command");
        Assert.Equal(AttachCommand.CommandFailed, code);
        Assert.Contains("(CommandFailed)", errors, StringComparison.Ordinal);
        Assert.Contains("No.such_command", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Attach_to_a_process_that_is_not_a_jvm_exits_with_its_code_and_does_not_signal_it()
    {
        using var sleep = Process.Start(new ProcessStartInfo("sleep", "120") { UseShellExecute = false })!;
        try
        {
            var (code, output, errors) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", sleep.Id.ToString(CultureInfo.InvariantCulture), "GC.finalizer_info");
            Assert.Equal(AttachCommand.NotAJvm, code);
            Assert.Contains("(NotAJvm)", errors, StringComparison.Ordinal);
            Assert.Contains("not a HotSpot JVM", errors, StringComparison.Ordinal);
            Assert.Equal(errors.Trim(), output.Trim()); // nothing on stdout
            Assert.False(sleep.HasExited, "SIGQUIT's default action would have killed it");

            var pidMax = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), CultureInfo.InvariantCulture);
            (code, _, errors) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", (pidMax + 1).ToString(CultureInfo.InvariantCulture), "GC.finalizer_info");
            Assert.Equal(AttachCommand.ProcessNotFound, code);
            Assert.Contains("no process with pid", errors, StringComparison.Ordinal);

            (code, _, errors) = await ChildProcess.RunApmAsAsync(null, null, ApmRun, "attach", "GC.finalizer_info");
            Assert.Equal(AttachCommand.Usage, code);
            Assert.Contains("usage: apm attach", errors, StringComparison.Ordinal);
        }
        finally
        {
            sleep.Kill();
        }
    }

    [Fact]
    public async Task Unprivileged_user_is_denied_a_root_jvm_with_the_reason_before_and_after_its_socket_exists()
    {
        var self = ProcessStatus.Parse(File.ReadAllText("/proc/self/status"), Environment.ProcessId);
        Assert.True(self.EffectiveUid == 0,
            $"this test must run as root: it starts a JVM as root and the client as uid 65534 (setpriv); it runs as uid {self.EffectiveUid}");
        var jvm = await StartJvmAsync("IdleService");
        var socket = "/tmp/.java_pid" + Pid(jvm);

        // Before: no listener yet, so the client would have to signal the JVM; it refuses and says why.
        Assert.False(File.Exists(socket), "the JVM has not opened its attach socket yet");
        var (code, output, errors) = await ChildProcess.RunApmAsAsync(AsNobody, NobodyEnvironment, ApmRun, "attach", Pid(jvm), "GC.finalizer_info");
        Assert.True(code == AttachCommand.PermissionDenied, $"exit {code}: {output}");
        Assert.Contains("(PermissionDenied)", errors, StringComparison.Ordinal);
        Assert.Contains("runs as uid 0 and this process as uid 65534", errors, StringComparison.Ordinal);
        Assert.Contains("its own user or root", errors, StringComparison.Ordinal);
        Assert.False(File.Exists(socket), "the JVM was not signalled, so it did not open its socket");

        // After: root wakes the listener; the socket (mode 0600, root's) refuses nobody's connect.
        Assert.Contains("instances waiting for finalization",
            await new HotSpotAttachClient().JcmdAsync(jvm.Pid, "GC.finalizer_info", TimeSpan.FromSeconds(30), default), StringComparison.Ordinal);
        Assert.True(File.Exists(socket));
        (code, output, errors) = await ChildProcess.RunApmAsAsync(AsNobody, NobodyEnvironment, ApmRun, "attach", Pid(jvm), "GC.finalizer_info");
        Assert.True(code == AttachCommand.PermissionDenied, $"exit {code}: {output}");
        Assert.Contains("(PermissionDenied)", errors, StringComparison.Ordinal);
        Assert.Contains("permission denied while connecting to /tmp/.java_pid" + Pid(jvm), errors, StringComparison.Ordinal);
        Assert.Contains("its own user or root", errors, StringComparison.Ordinal);
        Assert.False(jvm.HasExited);
    }

    [Fact]
    public async Task Ctrl_c_stops_waiting_for_a_jvm_that_does_not_answer_with_exit_130()
    {
        var jvm = await StartJvmAsync("IdleService");
        await new HotSpotAttachClient().JcmdAsync(jvm.Pid, "VM.version", TimeSpan.FromSeconds(30), default); // the listener is up
        var socket = "/tmp/.java_pid" + Pid(jvm);
        jvm.Pause();
        try
        {
            using var apm = ChildProcess.StartApm(["attach", "--timeout", "600", Pid(jvm), "GC.finalizer_info"]);
            // The request is in flight once the kernel holds its connection in the paused JVM's accept queue.
            for (var i = 0; i < 600 && !apm.Process.HasExited && UnixSocketsAt(socket) < 2; i++) await Task.Delay(100);
            Assert.True(UnixSocketsAt(socket) >= 2, "apm connected to the JVM: " + apm.Output);

            JavaFixture.RunTool("kill", ["-INT", apm.Process.Id.ToString(CultureInfo.InvariantCulture)]);
            await apm.Process.WaitForExitAsync().WaitAsync(ApmRun);
            apm.Process.WaitForExit(); // drains the output events
            Assert.Equal(AttachCommand.Cancelled, apm.Process.ExitCode);
            Assert.Contains("cancelled; JVM " + Pid(jvm) + " may still run the command", apm.Errors, StringComparison.Ordinal);
        }
        finally
        {
            jvm.Resume();
        }
    }

    /// <summary>
    /// Unix sockets of the listener at <paramref name="path"/>: the listener, plus one per connection it has not closed yet.
    /// /proc/net/unix shows the address a socket was bound to, and HotSpot binds to "&lt;path&gt;.tmp" before renaming it.
    /// </summary>
    private static int UnixSocketsAt(string path) =>
        File.ReadLines("/proc/net/unix").Count(l => l.EndsWith(" " + path, StringComparison.Ordinal) || l.EndsWith(" " + path + ".tmp", StringComparison.Ordinal));

    private static string Pid(JavaFixture jvm) => jvm.Pid.ToString(CultureInfo.InvariantCulture);

    private async Task<JavaFixture> StartJvmAsync(string mainClass)
    {
        var jvm = JavaFixture.Start(mainClass, ["-Xmx256m"]);
        _cleanup.Add(jvm);
        await jvm.WaitForOutputAsync("READY", Startup);
        return jvm;
    }
}
