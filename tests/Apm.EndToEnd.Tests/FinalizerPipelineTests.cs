using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Aggregator;
using Apm.Collector;
using Apm.Jvm.Attach;
using Apm.Protocol.V1;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace Apm.EndToEnd.Tests;

/// <summary>Finalization-queue and class-histogram sampling: selection rules, attach failures, and the whole pipeline.</summary>
public sealed class FinalizerPipelineTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_SlowFinalizer_JVM_shows_a_rising_finalizer_backlog_per_class_and_registered_finalizers_in_the_api()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var api = await pipeline.StartApiAsync();
        using var jvm = JavaFixture.Start("SlowFinalizer", ["-Xmx256m", "-XX:+UseSerialGC"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        var metrics = new CollectorMetrics();
        using var collector = new CollectorService(
            Options.Create(new CollectorOptions
            {
                SampleInterval = TimeSpan.FromSeconds(1),
                FinalizerInterval = TimeSpan.FromSeconds(1),
                HistogramInterval = TimeSpan.FromSeconds(3),
                HostName = "e2e-finalizer",
            }),
            Options.Create(pipeline.KafkaOptions), metrics, NullLogger<CollectorService>.Instance);
        await collector.StartAsync(CancellationToken.None);
        try
        {
            string? id = null;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                var list = await api.GetFromJsonAsync<JsonElement>("/api/jvms");
                id = list.EnumerateArray().Where(j => j.GetProperty("pid").GetInt32() == jvm.Pid).Select(j => j.GetProperty("id").GetString()).FirstOrDefault();
                return id != null;
            }, TimeSpan.FromSeconds(30)), "the JVM never appeared in /api/jvms");

            // The queue grows by about 1,000 objects a second: wait until the total series shows it rising.
            JsonElement pending = default;
            List<double[]> total = [];
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                pending = await MetricAsync(api, id!, "jvm.finalizer.pending");
                total = Series(pending, null);
                return total.Count >= 10 && total[^1][1] - total[0][1] >= 2000 && Series(pending, "SlowFinalizerResource").Count > 0;
            }, TimeSpan.FromSeconds(40)), $"no rising jvm.finalizer.pending total; got {string.Join(", ", total.Select(p => p[1]))}");

            Assert.Equal("{object}", pending.GetProperty("unit").GetString());
            // Rising, not one jump: the queue's length moves with the collections that discover dead objects, so
            // single steps go up and down; the least-squares slope over all readings must be well above zero
            // (the fixture adds ~1,000 a second) and the last third must sit above the first third.
            var values = string.Join(", ", total.Select(p => p[1]));
            Assert.True(Slope(total) > 200, $"jvm.finalizer.pending slope {Slope(total):F0}/s; readings {values}");
            var third = total.Count / 3;
            Assert.True(total.TakeLast(third).Average(p => p[1]) > total.Take(third).Average(p => p[1]), $"the backlog did not grow: {values}");
            // The class series carries the bulk of the queue (the fixture's other garbage is not finalizable).
            var perClass = Series(pending, "SlowFinalizerResource");
            Assert.True(perClass[^1][1] >= 0.9 * total.First(p => p[0] == perClass[^1][0])[1], "SlowFinalizerResource is not the bulk of the queue");

            // The oracle: jcmd's own reading now is at least our first reading (the backlog never drained).
            var now = FinalizerInfoParser.Parse(jvm.Jcmd("GC.finalizer_info"));
            Assert.True(now.PendingTotal >= total[0][1], $"jcmd shows {now.PendingTotal} pending, below our first reading {total[0][1]}");
            Assert.Equal("SlowFinalizerResource", now.Classes[0].ClassName);

            List<double[]> registered = [];
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                registered = Series(await MetricAsync(api, id!, "jvm.finalizer.registered"), null);
                return registered.Count > 0;
            }, TimeSpan.FromSeconds(20)), "no jvm.finalizer.registered point");
            // Every pending object is still registered (its Finalizer reference lives until finalize() ran).
            Assert.True(registered[^1][1] >= 1000, $"jvm.finalizer.registered is {registered[^1][1]}");

            var instances = await MetricAsync(api, id!, "jvm.class.instances");
            Assert.True(Series(instances, "java.lang.ref.Finalizer").Count > 0, "no jvm.class.instances series for java.lang.ref.Finalizer");
            Assert.True(Series(instances, "SlowFinalizerResource").Count > 0, "the finalizable class was not kept in the histogram");
            Assert.True(Series(instances, null)[^1][1] > 0, "no heap total in jvm.class.instances");
            var bytes = await MetricAsync(api, id!, "jvm.class.bytes");
            Assert.Equal("By", bytes.GetProperty("unit").GetString());
            Assert.True(Series(bytes, "[B").Count > 0, "the largest class by bytes ([B) was not kept");

            // Other JVMs on the host may refuse attach (the collector watches them all); ours must not have.
            var kinds = string.Join(", ", metrics.AttachFailuresByKind.Select(k => $"{k.Key}={k.Value}"));
            Assert.True(await pipeline.CountAsync(SamplePoints.AttachMeasurement, id!) == 0, $"attach to the fixture failed ({kinds})");
            output.WriteLine($"finalizer readings {metrics.FinalizerSamples}, histograms {metrics.HistogramSamples}, attach failures on this host: {kinds}");
            Assert.True(metrics.FinalizerSamples >= 5);
            Assert.True(metrics.HistogramSamples >= 1);
            Assert.Null(aggregator.Failure);
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Histogram_selection_keeps_the_leak_pattern_rows_watched_classes_and_the_top_N_by_bytes()
    {
        var rows = new List<ClassHistogramRow>
        {
            new(1, 500, 9_000_000, "[B", "java.base@17"),
            new(2, 400, 8_000_000, "java.lang.String", "java.base@17"),
            new(3, 300, 7_000_000, "com.acme.Big", null),
            new(4, 3000, 120_000, "java.lang.ref.Finalizer", "java.base@17"),
            new(5, 1000, 64_000, "com.acme.db.Statement", null),
            new(6, 1000, 48_000, "com.acme.db.Statement$1", null),
            new(7, 900, 40_000, "org.postgresql.jdbc.StatementCancelTimerTask", null),
            new(8, 20, 1_000, "java.util.TimerThread", "java.base@17"),
            new(9, 10, 500, "com.acme.cache.LruCache", null),
            new(10, 10, 400, "org.example.ConnPool", null),
            new(11, 1, 32, "java.util.TimerTask", "java.base@17"),
            new(12, 5, 100, "com.acme.Task", null),
            new(13, 5, 100, "com.acme.db.StatementX$1", null),
        };
        var histogram = new ClassHistogram(rows, 10_000, 25_000_000);
        var selection = new HistogramSelection(["com.acme.cache.*", @"re:org\.example\..*Pool"], topN: 2);
        var finalizable = new HashSet<string>(StringComparer.Ordinal) { "com.acme.db.Statement" };

        var kept = selection.Select(histogram, finalizable).ToDictionary(k => k.Row.ClassName, k => k.Reasons, StringComparer.Ordinal);

        Assert.Equal(new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["[B"] = "top-bytes",
            ["java.lang.String"] = "top-bytes",
            ["java.lang.ref.Finalizer"] = "finalizer,top-instances",
            ["com.acme.db.Statement"] = "finalizer-queue,top-instances",
            ["com.acme.db.Statement$1"] = "nested-in-finalizable",
            ["org.postgresql.jdbc.StatementCancelTimerTask"] = "timer-task",
            ["com.acme.cache.LruCache"] = "watch",
            ["org.example.ConnPool"] = "watch",
            ["java.util.TimerTask"] = "timer-task",
            ["com.acme.Task"] = "timer-task",
        }, kept);

        // The message: registered finalizers from the Finalizer row, totals from the Total line, omitted rows counted.
        var sample = AttachSampler.ToHistogramSample(new JvmIdentity { JvmId = "h:1:2" }, histogram, selection.Select(histogram, finalizable), 1);
        Assert.Equal(3000, sample.FinalizerRegistered);
        Assert.Equal(rows.Count - kept.Count, sample.RowsOmitted);
        Assert.Equal(25_000_000, sample.TotalBytes);
        Assert.Equal(string.Empty, sample.Rows.Single(r => r.ClassName == "com.acme.Task").Module);
    }

    [Fact]
    public void An_invalid_watch_pattern_is_refused_with_its_text()
    {
        var ex = Assert.Throws<ArgumentException>(() => new HistogramSelection(["ok.*", "re:(unclosed"], 5));
        Assert.Contains("re:(unclosed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_attach_failure_is_reported_once_per_change_backs_off_and_recovery_is_reported()
    {
        var clock = new ManualClock(DateTimeOffset.UnixEpoch.AddDays(20_000));
        var published = new ConcurrentQueue<CollectorMessage>();
        var calls = 0;
        Exception? failure = new AttachException(AttachFailure.Timeout, 42, "no answer within 10 s");
        var metrics = new CollectorMetrics();
        using var sampler = new AttachSampler(
            new CollectorOptions { FinalizerInterval = TimeSpan.FromSeconds(1), HistogramInterval = TimeSpan.Zero },
            metrics, NullLogger.Instance, published.Enqueue,
            (pid, command, timeout, ct) =>
            {
                Interlocked.Increment(ref calls);
                return failure is null
                    ? Task.FromResult("Unreachable instances waiting for finalization\n#instances  class name\n-----------------------\n    12  com.acme.Res\n")
                    : Task.FromException<string>(failure);
            },
            clock);
        JvmIdentity[] jvms = [new() { JvmId = "h:42:1", Host = "h", Pid = 42 }];

        sampler.Tick(jvms, CancellationToken.None);
        await sampler.DrainAsync();
        var status = Assert.Single(published).AttachStatus;
        Assert.False(status.Ok);
        Assert.Equal("Timeout", status.Failure);
        Assert.Equal("GC.finalizer_info", status.Command);
        Assert.Equal(1, metrics.AttachFailures);

        // Backing off: nothing for 5 intervals, then a retry whose identical failure is counted, not re-sent.
        clock.Now += TimeSpan.FromSeconds(4);
        sampler.Tick(jvms, CancellationToken.None);
        await sampler.DrainAsync();
        Assert.Equal(1, calls);
        clock.Now += TimeSpan.FromSeconds(1);
        sampler.Tick(jvms, CancellationToken.None);
        await sampler.DrainAsync();
        Assert.Equal(2, calls);
        Assert.Single(published);
        Assert.Equal(2, metrics.AttachFailuresByKind["Timeout"]);

        // A different failure is a change: reported.
        failure = new AttachException(AttachFailure.PermissionDenied, 42, "not allowed");
        clock.Now += TimeSpan.FromSeconds(5);
        sampler.Tick(jvms, CancellationToken.None);
        await sampler.DrainAsync();
        Assert.Equal(2, published.Count);
        Assert.Equal("PermissionDenied", published.Last().AttachStatus.Failure);

        failure = null;
        clock.Now += TimeSpan.FromSeconds(5);
        sampler.Tick(jvms, CancellationToken.None);
        await sampler.DrainAsync();
        var last = published.Skip(2).ToList();
        Assert.Equal(12, Assert.Single(last, m => m.BodyCase == CollectorMessage.BodyOneofCase.Finalizer).Finalizer.PendingTotal);
        Assert.True(Assert.Single(last, m => m.BodyCase == CollectorMessage.BodyOneofCase.AttachStatus).AttachStatus.Ok);
    }

    [Fact]
    public async Task A_JVM_with_attach_disabled_is_reported_while_another_JVM_is_sampled_in_the_same_tick()
    {
        using var healthy = JavaFixture.Start("SlowFinalizer", ["-Xmx128m", "-XX:+UseSerialGC"]);
        using var disabled = JavaFixture.Start("IdleService", ["-Xmx64m", "-XX:+DisableAttachMechanism"]);
        await healthy.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        await disabled.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        var published = new ConcurrentQueue<CollectorMessage>();
        var metrics = new CollectorMetrics();
        using var sampler = new AttachSampler(
            new CollectorOptions { FinalizerInterval = TimeSpan.FromSeconds(1), HistogramInterval = TimeSpan.Zero, AttachTimeout = TimeSpan.FromSeconds(10) },
            metrics, NullLogger.Instance, published.Enqueue);

        sampler.Tick([new() { JvmId = "h:d", Pid = disabled.Pid }, new() { JvmId = "h:s", Pid = healthy.Pid }], CancellationToken.None);
        await sampler.DrainAsync();

        var status = Assert.Single(published, m => m.BodyCase == CollectorMessage.BodyOneofCase.AttachStatus).AttachStatus;
        Assert.Equal("h:d", status.Jvm.JvmId);
        Assert.Equal(nameof(AttachFailure.AttachDisabled), status.Failure);
        Assert.False(string.IsNullOrEmpty(status.Reason));
        var sample = Assert.Single(published, m => m.BodyCase == CollectorMessage.BodyOneofCase.Finalizer).Finalizer;
        Assert.Equal("h:s", sample.Jvm.JvmId);
        Assert.Equal(1, metrics.AttachFailuresByKind[nameof(AttachFailure.AttachDisabled)]);
    }

    /// <summary>Least-squares slope of the points, per second.</summary>
    private static double Slope(List<double[]> points)
    {
        var mx = points.Average(p => p[0] / 1000);
        var my = points.Average(p => p[1]);
        var sxy = points.Sum(p => ((p[0] / 1000) - mx) * (p[1] - my));
        var sxx = points.Sum(p => ((p[0] / 1000) - mx) * ((p[0] / 1000) - mx));
        return sxx == 0 ? 0 : sxy / sxx;
    }

    private static async Task<JsonElement> MetricAsync(HttpClient api, string id, string metric) =>
        await api.GetFromJsonAsync<JsonElement>($"/api/jvms/{Uri.EscapeDataString(id)}/metrics/{metric}?from=-10m");

    /// <summary>The points of the series whose <c>class</c> label is <paramref name="className"/> (null: the series without one).</summary>
    private static List<double[]> Series(JsonElement body, string? className)
    {
        foreach (var s in body.GetProperty("series").EnumerateArray())
        {
            var labels = s.GetProperty("labels");
            var cls = labels.TryGetProperty("class", out var c) ? c.GetString() : null;
            if (cls == className)
                return s.GetProperty("points").EnumerateArray().Select(p => new[] { p[0].GetDouble(), p[1].GetDouble() }).ToList();
        }

        return [];
    }

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
