using Apm.Dashboard.Panels;
using Apm.Influx;
using Apm.Testing;

namespace Apm.Dashboard.Tests;

/// <summary>
/// Ranges older than the raw data's retention read the downsampled policy that docs/operations.md sets up (5-minute
/// means as "value", maxima as "max"). The downsampled points are made by running the documented continuous query's
/// statement on a real influxd, then the raw points are dropped as their retention would.
/// </summary>
public sealed class LongRangeTests
{
    [Fact]
    public async Task A_chart_of_the_last_sixty_days_reads_the_five_minute_copy_once_the_raw_points_are_gone()
    {
        await using var influx = await InfluxServer.StartAsync();
        var options = influx.Options("apm");
        using var query = new InfluxQueryClient(options);
        using (var setup = new InfluxWriter(options)) await setup.EnsureDatabaseAsync();
        // The raw points go to a policy of their own, dropped below as their retention would drop them.
        await query.QueryAsync("CREATE RETENTION POLICY \"apm_raw\" ON \"apm\" DURATION 0s REPLICATION 1");
        await query.QueryAsync("CREATE RETENTION POLICY \"apm_1y\" ON \"apm\" DURATION 52w REPLICATION 1 SHARD DURATION 7d");
        using var writer = new InfluxWriter(new InfluxOptions { Url = influx.Url, Database = "apm", RetentionPolicy = "apm_raw" });

        // An hour of 10-second samples, 45 days ago, aligned to 5 minutes: old generation = the sample's index in MB,
        // young collections counted up by one per sample.
        const string jvm = "host-x:4242:1";
        var start = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddDays(-45).ToUnixTimeSeconds() / 300 * 300);
        var lines = new LineProtocolBuilder();
        for (var i = 0; i < 360; i++)
        {
            var t = start.AddSeconds(i * 10);
            lines.Measurement("jvm.memory.used").Tag("jvm_id", jvm).Tag("pool", "old").Tag("type", "heap").Field("value", i * 1_048_576.0).Timestamp(t);
            lines.Measurement("jvm.gc.collections").Tag("collector", "young").Tag("jvm_id", jvm).Field("value", (double)i).Timestamp(t);
        }

        await writer.WriteAsync(lines);
        // The continuous query of docs/operations.md, run once over the hour (what InfluxDB does every 5 minutes).
        var cq = (await File.ReadAllLinesAsync(Path.Combine(PanelDefinitionTests.RepositoryRoot(), "eng", "docker", "influxdb-init.iql"))).Single(l => l.StartsWith("CREATE CONTINUOUS QUERY", StringComparison.Ordinal));
        var select = cq[(cq.IndexOf("BEGIN ", StringComparison.Ordinal) + 6)..cq.LastIndexOf(" END", StringComparison.Ordinal)]
            .Replace("\"apm\".\"apm_30d\".", "\"apm\".\"apm_raw\".", StringComparison.Ordinal)
            .Replace(" GROUP BY", $" WHERE time >= {InfluxQl.Time(start)} AND time < {InfluxQl.Time(start.AddHours(1))} GROUP BY", StringComparison.Ordinal);
        var backfill = await query.QueryAsync(select);
        Assert.All(backfill.Results, r => Assert.Null(r.Error));
        // The raw policy's retention passes: the raw points are gone.
        Assert.Equal(12, await CountAsync(query, "\"apm\".\"apm_1y\".\"jvm.memory.used\""));
        await query.QueryAsync("DROP RETENTION POLICY \"apm_raw\" ON \"apm\"");

        var panels = PanelDefinitions.Load(null);
        var sixtyDays = (From: DateTimeOffset.UtcNow.AddDays(-60), To: DateTimeOffset.UtcNow);
        var raw = await new ChartQueries(query, panels).ReadAsync(jvm, sixtyDays.From, sixtyDays.To, TimeSpan.FromHours(2), CancellationToken.None);
        Assert.Empty(raw.Panels.Single(p => p.Id == "heap").X);

        var dashboard = new DashboardOptions { LongRangePolicy = "apm_1y" };
        var charts = new ChartQueries(query, panels, options, dashboard);
        Assert.Null(charts.LongRangeSource(DateTimeOffset.UtcNow.AddDays(-7)));
        // A raw-point request (no step) over the long range is served at the copy's 5-minute step.
        var longRange = await charts.ReadAsync(jvm, sixtyDays.From, sixtyDays.To, step: null, CancellationToken.None);
        var heap = longRange.Panels.Single(p => p.Id == "heap");
        var old = heap.Y[heap.Labels.ToList().IndexOf("old")];
        Assert.Equal(12, heap.X.Count);
        for (var k = 0; k < 12; k++)
        {
            // Each 5-minute mean of samples 30k .. 30k+29 (in MB) is 30k + 14.5.
            Assert.Equal(start.AddMinutes(5 * k).ToUnixTimeMilliseconds(), heap.X[k]);
            Assert.Equal(((30 * k) + 14.5) * 1_048_576.0, old[k]);
        }

        // A counter's rate comes from the 5-minute maxima: 30 collections per 300 s.
        var gc = longRange.Panels.Single(p => p.Id == "gc-collections");
        var young = gc.Y[gc.Labels.ToList().IndexOf("young")].Where(v => v is not null).ToList();
        Assert.Equal(11, young.Count);
        Assert.All(young, v => Assert.Equal(0.1, v!.Value, 9));
    }

    private static async Task<long> CountAsync(InfluxQueryClient query, string measurement)
    {
        var result = await query.QueryAsync($"SELECT count(\"value\") FROM {measurement}");
        return result.Series.FirstOrDefault()?.GetInt64(0, "count") ?? 0;
    }
}
