namespace Apm.Reports.Tests;

/// <summary>
/// How the triage child's end is classified, with real child processes: shell scripts stand in for <c>apm triage</c>
/// (<see cref="TriageRunner"/> runs whatever program it is given), so the kernel's SIGKILL and its memory cgroup are
/// the real ones.
/// </summary>
public sealed class TriageRunnerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("apm-triage-runner-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task A_triage_child_killed_by_SIGKILL_is_reported_as_stopped_by_its_memory_limit()
    {
        // What the kernel's out-of-memory killer does to a process: signal 9, no word on stderr.
        var killed = await RunScriptAsync("kill -KILL $$", 64L << 20);

        Assert.Equal("triage-memory-limit", killed.Failure);
        Assert.Contains("SIGKILL", killed.Reason, StringComparison.Ordinal);
        Assert.Contains((64L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), killed.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_triage_child_that_fails_otherwise_is_a_plain_triage_failure_with_its_exit_code_and_stderr()
    {
        var failed = await RunScriptAsync("echo 'cannot read the dump' >&2; exit 9", 64L << 20);

        Assert.Equal("triage-failed", failed.Failure);
        Assert.Contains("code 9", failed.Reason, StringComparison.Ordinal);
        Assert.Contains("cannot read the dump", failed.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Where_a_memory_cgroup_can_be_made_a_child_allocating_past_its_hard_cap_is_killed_by_the_kernel()
    {
        var whyNot = TriageRunner.HardCapUnavailableReason();
        if (whyNot is not null)
        {
            // Not root, or no memory controller to use: the managed-heap limit is all there is, and the reason says so.
            Assert.Contains("cgroup", whyNot, StringComparison.Ordinal);
            return;
        }

        // 1 GiB of native memory, touched (dd fills its buffer from /dev/zero), against a cap of 16 MiB + the headroom.
        // The pause lets the runner move the child into its cgroup first, as the runtime's start-up does for apm triage.
        var limit = 16L << 20;
        var capped = await RunScriptAsync("sleep 1; exec dd if=/dev/zero of=/dev/null bs=1G count=1", limit);

        Assert.Equal("triage-memory-limit", capped.Failure);
        Assert.Contains("killed by the kernel at its hard memory cap", capped.Reason, StringComparison.Ordinal);
        Assert.Contains((limit + TriageRunner.NativeHeadroomBytes).ToString(System.Globalization.CultureInfo.InvariantCulture), capped.Reason, StringComparison.Ordinal);
    }

    private async Task<TriageOutcome> RunScriptAsync(string body, long memoryLimitBytes)
    {
        var script = Path.Combine(_dir.FullName, Guid.NewGuid().ToString("N") + ".sh");
        await File.WriteAllTextAsync(script, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return await TriageRunner.RunAsync(Path.Combine(_dir.FullName, "no.hprof"), memoryLimitBytes, TimeSpan.FromMinutes(2), script, CancellationToken.None);
    }
}
