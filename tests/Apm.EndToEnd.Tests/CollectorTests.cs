using System.Diagnostics;
using Apm.Collector;
using Apm.Protocol.V1;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.EndToEnd.Tests;

/// <summary>The collector's sampler against real JVMs and real processes with broken hsperfdata files.</summary>
public sealed class CollectorTests
{
    [Fact]
    public async Task The_sampler_notices_a_JVM_that_starts_after_it_and_one_that_exits_at_the_next_poll()
    {
        var metrics = new CollectorMetrics();
        using var sampler = new JvmSampler(new CollectorOptions { HostName = "h" }, metrics, NullLogger.Instance);
        sampler.Poll(); // JVMs already running (other tests') are known before ours starts
        using var jvm = JavaFixture.Start("IdleService", ["-Xmx64m"]);
        await jvm.WaitForPerfDataAsync(TimeSpan.FromSeconds(30));
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));

        // First poll after the JVM started: one interval at most.
        var first = sampler.Poll();
        var sample = first.Where(m => m.BodyCase == CollectorMessage.BodyOneofCase.Sample).Select(m => m.Sample).SingleOrDefault(s => s.Jvm.Pid == jvm.Pid);
        Assert.True(sample != null, $"no sample of pid {jvm.Pid} at the first poll; messages: {string.Join("; ", first)}; unreadable readings {metrics.UnreadableReadings}");
        Assert.Equal("IdleService", sample.Jvm.MainClass);
        Assert.Equal(1UL, sample.Sequence);
        Assert.Contains(sample.Spaces, s => s.Pool == "eden" && s.MaxBytes > 0);
        // Metaspace "used" is published by HotSpot at collections, so a JVM that has not collected yet may show 0.
        Assert.Contains(sample.Spaces, s => s.Pool == "metaspace" && s.Type == "non_heap");
        Assert.NotEmpty(sample.Collectors);
        var second = sampler.Poll().Select(m => m.Sample).Single(s => s?.Jvm.Pid == jvm.Pid);
        Assert.Equal(2UL, second.Sequence);
        Assert.Equal(sample.Jvm.JvmId, second.Jvm.JvmId);

        jvm.Kill();
        var afterExit = sampler.Poll();
        var gone = afterExit.Where(m => m.BodyCase == CollectorMessage.BodyOneofCase.Status).Select(m => m.Status).Single(s => s.Jvm.Pid == jvm.Pid);
        Assert.Equal(JvmStatus.Types.State.Gone, gone.State);
        Assert.Equal(sample.Jvm.JvmId, gone.Jvm.JvmId);
        Assert.DoesNotContain(sampler.Poll(), m => m.Sample?.Jvm.Pid == jvm.Pid || m.Status?.Jvm.Pid == jvm.Pid);
    }

    [Theory]
    [InlineData("zero-filled")]
    [InlineData("truncated")]
    [InlineData("wrong-magic")]
    public async Task A_live_process_with_a_broken_hsperfdata_file_is_reported_unreadable_with_the_reason(string damage)
    {
        // A real JVM's file, damaged, placed where a live (non-JVM) process's file would be.
        using var jvm = JavaFixture.Start("IdleService", ["-Xmx64m"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        var original = await File.ReadAllBytesAsync(jvm.PerfDataPath);
        var bytes = damage switch
        {
            "zero-filled" => new byte[original.Length],
            "truncated" => original[..100],
            _ => [0xDE, 0xAD, 0xBE, 0xEF, .. original[4..]],
        };
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        var root = Directory.CreateTempSubdirectory("apm-tmproot-");
        try
        {
            var dir = Directory.CreateDirectory(Path.Combine(root.FullName, "hsperfdata_tester"));
            await File.WriteAllBytesAsync(Path.Combine(dir.FullName, sleeper.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), bytes);
            var metrics = new CollectorMetrics();
            using var sampler = new JvmSampler(new CollectorOptions { HostName = "h", TmpRoot = root.FullName, ScanContainers = false }, metrics, NullLogger.Instance);
            var messages = sampler.Poll().Concat(sampler.Poll()).Concat(sampler.Poll()).ToList();
            var status = Assert.Single(messages).Status;
            Assert.Equal(JvmStatus.Types.State.Unreadable, status.State);
            Assert.Equal(sleeper.Id, status.Jvm.Pid);
            Assert.False(string.IsNullOrWhiteSpace(status.Reason));
            Assert.Equal(3, metrics.UnreadableReadings);
            Assert.Equal(0, metrics.SamplesRead);
        }
        finally
        {
            sleeper.Kill();
            root.Delete(true);
        }
    }
}
