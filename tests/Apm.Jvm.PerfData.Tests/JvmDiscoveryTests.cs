using System.Diagnostics;
using System.Globalization;
using Apm.Jvm.PerfData;
using Apm.Testing;

namespace Apm.Jvm.PerfData.Tests;

public class JvmDiscoveryTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_jvm_is_found_while_it_runs_and_not_after_it_was_killed()
    {
        var discovery = new JvmDiscovery();
        var jvm = JavaFixture.Start("IdleService", ["-Xmx64m"]);
        var path = jvm.PerfDataPath;
        try
        {
            await jvm.WaitForPerfDataAsync(StartTimeout);
            var found = discovery.Discover().SingleOrDefault(j => j.Pid == jvm.Pid);
            Assert.NotNull(found);
            Assert.Equal(jvm.Pid, found.NsPid);
            Assert.Equal(jvm.PerfDataPath, found.PerfDataPath);
            Assert.Equal(Environment.UserName, found.User);
            Assert.Null(found.ContainerRoot);

            jvm.Kill();
            // SIGKILL leaves the file behind: only the dead pid tells discovery that the JVM is gone.
            Assert.True(File.Exists(jvm.PerfDataPath), "a killed JVM cannot delete its file");
            Assert.DoesNotContain(discovery.Discover(), j => j.Pid == jvm.Pid);
        }
        finally
        {
            jvm.Dispose();
            File.Delete(path);
        }
    }

    [Fact]
    public void Host_files_of_live_pids_and_container_files_of_foreign_namespaces_are_found_from_configured_roots()
    {
        using var dir = new TempDir();
        var tmp = Path.Combine(dir.Path, "tmp");
        var proc = Path.Combine(dir.Path, "proc");
        var content = new PerfDataWriter().Long("sun.os.hrt.frequency", 1).Build();
        Directory.CreateDirectory(Path.Combine(proc, "self", "ns"));
        File.CreateSymbolicLink(Path.Combine(proc, "self", "ns", "pid"), "pid:[1000]");

        // Host: pid 42 alive, pid 43 stale (no /proc entry), a non-numeric file ignored.
        var live = dir.File("tmp/hsperfdata_alice/42", content);
        dir.File("tmp/hsperfdata_alice/43", content);
        dir.File("tmp/hsperfdata_alice/notapid", content);
        FakeProcess(proc, 42, "pid:[1000]", "NStgid:\t42");

        // A container (namespace 2000): host pid 55 is the JVM with nspid 7; pid 56 shares the namespace, no JVM.
        FakeProcess(proc, 55, "pid:[2000]", "NStgid:\t55\t7");
        FakeProcess(proc, 56, "pid:[2000]", "NStgid:\t56\t8");
        dir.File("proc/55/root/tmp/hsperfdata_app/7", content);
        Directory.CreateSymbolicLink(Path.Combine(proc, "56", "root"), Path.Combine(proc, "55", "root"));
        // Our own namespace: never looked at through its root.
        FakeProcess(proc, 57, "pid:[1000]", "NStgid:\t57");
        dir.File("proc/57/root/tmp/hsperfdata_x/57", content);

        var discovery = new JvmDiscovery(tmp, proc);
        var found = discovery.Discover();

        Assert.Equal(
            [
                new DiscoveredJvm(42, 42, live, "alice", null),
                new DiscoveredJvm(55, 7, Path.Combine(proc, "55", "root", "tmp", "hsperfdata_app", "7"), "app", Path.Combine(proc, "55", "root")),
            ],
            found);
        Assert.Empty(discovery.LastSkipped);
        Assert.DoesNotContain(new JvmDiscovery(tmp, proc, scanContainers: false).Discover(), j => j.ContainerRoot != null);
    }

    [Fact]
    public void Missing_roots_find_nothing_without_failing()
    {
        var discovery = new JvmDiscovery("/nonexistent-apm-tmp", "/nonexistent-apm-proc");
        Assert.Empty(discovery.Discover());
        Assert.Empty(discovery.LastSkipped);
    }

    /// <summary>
    /// A JVM in its own pid and mount namespace with a private /tmp, like a container: found through
    /// /proc/&lt;pid&gt;/root with its namespace pid, and readable there. Needs unshare(1) with the right to create
    /// namespaces (root in CI); without it the test checks that the refusal is a permission problem.
    /// </summary>
    [Fact]
    public async Task A_jvm_in_its_own_pid_namespace_with_a_private_tmp_is_found_through_its_proc_root()
    {
        // The classes live outside /tmp: the JVM resolves its class path to an absolute path, which the private
        // /tmp would hide.
        // (The repository itself may be cloned under /tmp, so not beside the test assembly either.)
        var outside = Directory.Exists("/var/tmp") ? "/var/tmp" : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var classes = Path.Combine(outside, "apm-ns-classes-" + Guid.NewGuid().ToString("N")[..8]);
        using var cleanup = new DeleteOnDispose(classes);
        JavaFixture.RunTool("javac", ["-d", classes, Path.Combine(JavaFixture.SourceDirectory, "IdleService.java")]);
        var psi = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        // cd first: the class directory stays reachable through the working directory after /tmp is hidden.
        foreach (var a in (string[])["--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "sh", "-c",
                     "cd \"$0\" && mount -t tmpfs tmpfs /tmp && exec java -Xmx32m -cp . IdleService", classes])
        {
            psi.ArgumentList.Add(a);
        }

        using var unshare = Process.Start(psi)!;
        try
        {
            var discovery = new JvmDiscovery();
            DiscoveredJvm? jvm = null;
            for (var i = 0; i < 600 && jvm is null && !unshare.HasExited; i++)
            {
                await Task.Delay(100);
                jvm = discovery.Discover().FirstOrDefault(j => j.ContainerRoot != null && IsChildOf(j.Pid, unshare.Id));
            }

            if (jvm is null)
            {
                Assert.True(unshare.HasExited, "the namespaced JVM runs but was not discovered");
                var stderr = await unshare.StandardError.ReadToEndAsync();
                Assert.Contains("Operation not permitted", stderr, StringComparison.Ordinal);
                return;
            }

            Assert.Equal(1, jvm.NsPid); // the JVM is the namespace's init
            var root = Path.Combine("/proc", jvm.Pid.ToString(CultureInfo.InvariantCulture), "root");
            Assert.Equal(root, jvm.ContainerRoot);
            Assert.Equal(Path.Combine(root, "tmp", "hsperfdata_" + Environment.UserName, "1"), jvm.PerfDataPath);
            Assert.False(File.Exists(Path.Combine("/tmp", "hsperfdata_" + Environment.UserName, "1")), "the file lives only in the private /tmp");
            // The file appears before the JVM has written its counters: read until they are there (as the sampler does).
            using var file = PerfDataFile.Open(jvm.PerfDataPath);
            JvmCounters? counters = null;
            for (var i = 0; i < 300 && counters is null; i++)
            {
                try
                {
                    counters = HotSpotCounters.From(file.Read(TimeSpan.FromSeconds(30)));
                }
                catch (PerfDataFormatException) when (i < 299)
                {
                    await Task.Delay(100);
                }
            }

            Assert.Equal("IdleService", counters!.MainClass);

            unshare.Kill(entireProcessTree: true);
            await unshare.WaitForExitAsync();
            for (var i = 0; i < 100 && Directory.Exists(Path.Combine("/proc", jvm.Pid.ToString(CultureInfo.InvariantCulture))); i++) await Task.Delay(50);
            Assert.DoesNotContain(discovery.Discover(), j => j.Pid == jvm.Pid);
        }
        finally
        {
            if (!unshare.HasExited) unshare.Kill(entireProcessTree: true);
        }
    }

    private static bool IsChildOf(int pid, int ancestor)
    {
        for (var p = pid; p > 1;)
        {
            if (p == ancestor) return true;
            try
            {
                var stat = File.ReadAllText($"/proc/{p}/stat");
                p = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                return false;
            }
        }

        return false;
    }

    private static void FakeProcess(string proc, int pid, string ns, string nstgid)
    {
        var p = Path.Combine(proc, pid.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(Path.Combine(p, "ns"));
        File.CreateSymbolicLink(Path.Combine(p, "ns", "pid"), ns);
        File.WriteAllText(Path.Combine(p, "status"), $"Name:\tjava\nTgid:\t{pid}\n{nstgid}\nNSpid:\t{pid}\n");
    }

    private sealed class DeleteOnDispose(string path) : IDisposable
    {
        public void Dispose()
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
    }
}
