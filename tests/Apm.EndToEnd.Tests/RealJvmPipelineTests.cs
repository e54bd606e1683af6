using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Collector;
using Apm.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Apm.EndToEnd.Tests;

/// <summary>A real JVM → collector → Kafka (mock cluster) → aggregator → real influxd → the JSON API.</summary>
public sealed class RealJvmPipelineTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task A_running_JVM_appears_in_the_api_with_series_that_match_jcmd_PerfCounter_print()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var api = await pipeline.StartApiAsync();
        using var jvm = JavaFixture.Start("IdleService", ["-Xmx128m", "-XX:+UseSerialGC"]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
        var metrics = new CollectorMetrics();
        using var collector = new CollectorService(
            Options.Create(new CollectorOptions { SampleInterval = Interval, HostName = "e2e-host" }),
            Options.Create(pipeline.KafkaOptions), metrics, NullLogger<CollectorService>.Instance);
        await collector.StartAsync(CancellationToken.None);
        try
        {
            JsonElement? entry = null;
            Assert.True(await Pipeline.EventuallyAsync(async () =>
            {
                var list = await api.GetFromJsonAsync<JsonElement>("/api/jvms");
                entry = list.EnumerateArray().Cast<JsonElement?>().FirstOrDefault(j => j!.Value.GetProperty("pid").GetInt32() == jvm.Pid);
                return entry != null;
            }, TimeSpan.FromSeconds(30)), "the JVM never appeared in /api/jvms");

            var e = entry!.Value;
            var id = e.GetProperty("id").GetString()!;
            Assert.Equal("IdleService", e.GetProperty("mainClass").GetString());
            Assert.Equal("live", e.GetProperty("status").GetString());
            Assert.Equal("e2e-host", e.GetProperty("host").GetString());

            // The oracle: jcmd's own reading of the same counters, taken now; then let two more samples land.
            var before = DateTimeOffset.UtcNow;
            var perf = ParsePerfCounters(jvm.Jcmd("PerfCounter.print"));
            var after = DateTimeOffset.UtcNow;
            await Task.Delay(Interval * 3);

            Assert.Equal(perf["java.property.java.vm.version"].Trim('"'), e.GetProperty("jvmVersion").GetString());
            var gcNames = Enumerable.Range(0, 8).Where(n => perf.ContainsKey($"sun.gc.collector.{n}.name")).Select(n => perf[$"sun.gc.collector.{n}.name"].Trim('"'));
            Assert.Equal(string.Join(", ", gcNames), e.GetProperty("gc").GetString());

            var used = await SeriesAsync(api, id, "jvm.memory.used");
            Assert.Contains("eden", used.Keys);
            Assert.Contains("old", used.Keys);
            Assert.Contains("metaspace", used.Keys);
            var limit = await SeriesAsync(api, id, "jvm.memory.limit");
            Assert.Equal(long.Parse(perf["sun.gc.generation.1.space.0.maxCapacity"], CultureInfo.InvariantCulture), (long)limit["old"].Last()[1]);

            // Moving counters: jcmd's value lies between our samples taken one interval before and after it.
            AssertWithinSamples(used["metaspace"], long.Parse(perf["sun.gc.metaspace.used"], CultureInfo.InvariantCulture), before, after);
            var collections = await SeriesAsync(api, id, "jvm.gc.collections", "collector");
            for (var n = 0; perf.ContainsKey($"sun.gc.collector.{n}.name"); n++)
            {
                var name = perf[$"sun.gc.collector.{n}.name"].Trim('"');
                Assert.True(collections.ContainsKey(name), $"no jvm.gc.collections series for collector {name}");
                AssertWithinSamples(collections[name], long.Parse(perf[$"sun.gc.collector.{n}.invocations"], CultureInfo.InvariantCulture), before, after);
            }

            Assert.Equal(0, metrics.SamplesDropped);
            Assert.Null(aggregator.Failure);
        }
        finally
        {
            await collector.StopAsync(CancellationToken.None);
        }
    }

    private static void AssertWithinSamples(List<double[]> points, long oracle, DateTimeOffset before, DateTimeOffset after)
    {
        var lo = before - Interval - TimeSpan.FromMilliseconds(500);
        var hi = after + Interval + TimeSpan.FromMilliseconds(500);
        var near = points.Where(p => p[0] >= lo.ToUnixTimeMilliseconds() && p[0] <= hi.ToUnixTimeMilliseconds()).Select(p => (long)p[1]).ToList();
        Assert.True(near.Count >= 2, $"expected samples around the jcmd reading, got {near.Count}");
        Assert.InRange(oracle, near.Min(), near.Max());
    }

    /// <summary>GET the metric and index its series by a label ("pool" by default).</summary>
    private static async Task<Dictionary<string, List<double[]>>> SeriesAsync(HttpClient api, string id, string metric, string label = "pool")
    {
        var body = await api.GetFromJsonAsync<JsonElement>($"/api/jvms/{Uri.EscapeDataString(id)}/metrics/{metric}?from=-10m");
        var result = new Dictionary<string, List<double[]>>(StringComparer.Ordinal);
        foreach (var s in body.GetProperty("series").EnumerateArray())
        {
            var key = s.GetProperty("labels").GetProperty(label).GetString()!;
            result[key] = s.GetProperty("points").EnumerateArray().Select(p => new[] { p[0].GetDouble(), p[1].GetDouble() }).ToList();
        }

        return result;
    }

    internal static Dictionary<string, string> ParsePerfCounters(string text)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0) map[line[..eq].Trim()] = line[(eq + 1)..].Trim();
        }

        return map;
    }
}
