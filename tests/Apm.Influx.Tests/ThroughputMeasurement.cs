using System.Diagnostics;
using System.Globalization;
using System.Text;
using Apm.Influx;
using Xunit.Abstractions;

namespace Apm.Influx.Tests;

/// <summary>
/// Measures points/s for 5,000-point batches into the local influxd, against a baseline run beside it: the same
/// lines POSTed uncompressed with a bare HttpClient. Prints the figures; asserts only that every point was stored.
/// </summary>
public class ThroughputMeasurement(InfluxFixture influx, ITestOutputHelper output) : IClassFixture<InfluxFixture>
{
    private const int BatchPoints = 5000;
    private const int Batches = 20;

    private static string Batch(int batch)
    {
        // Shaped like the aggregator's output: 50 JVMs x 5 pools x 20 timestamps per batch, 3 integer fields.
        string[] pools = ["G1 Eden Space", "G1 Survivor Space", "G1 Old Gen", "Metaspace", "CodeHeap 'non-nmethods'"];
        var lp = new LineProtocolBuilder(BatchPoints * 120);
        var i = 0;
        for (var t = 0; t < 20; t++)
        {
            for (var jvm = 0; jvm < 50; jvm++)
            {
                foreach (var pool in pools)
                {
                    lp.Measurement("jvm.memory.used").Tag("host", "host-" + (jvm % 5).ToString(CultureInfo.InvariantCulture))
                        .Tag("jvm", jvm.ToString(CultureInfo.InvariantCulture)).Tag("pool", pool)
                        .Field("used", 1_000_000L + i).Field("committed", 2_000_000L + i).Field("max", 4_000_000_000L)
                        .Timestamp(1_700_000_000_000_000_000L + (((long)batch * 20) + t) * 1_000_000_000L);
                    i++;
                }
            }
        }

        return lp.ToString();
    }

    [Fact]
    public async Task Points_per_second_for_5000_point_batches()
    {
        var writerOptions = await influx.NewDatabaseAsync("bench_writer");
        var rawOptions = await influx.NewDatabaseAsync("bench_raw");
        var batches = Enumerable.Range(0, Batches).Select(Batch).ToArray();
        var rawBodies = batches.Select(Encoding.UTF8.GetBytes).ToArray();
        using var writer = new InfluxWriter(writerOptions);
        using var raw = new HttpClient();
        var rawUri = new Uri(influx.Server.Url, $"/write?db={rawOptions.Database}&precision=ns");

        // Warm up both paths (JIT, connections, shard creation) with the first batch, then alternate per batch.
        await writer.WriteAsync(batches[0]);
        (await raw.PostAsync(rawUri, new ByteArrayContent(rawBodies[0]))).EnsureSuccessStatusCode();
        var writerTime = TimeSpan.Zero;
        var rawTime = TimeSpan.Zero;
        for (var b = 1; b < Batches; b++)
        {
            var sw = Stopwatch.StartNew();
            await writer.WriteAsync(batches[b]);
            writerTime += sw.Elapsed;

            sw.Restart();
            using var response = await raw.PostAsync(rawUri, new ByteArrayContent(rawBodies[b]));
            response.EnsureSuccessStatusCode();
            rawTime += sw.Elapsed;
        }

        var measured = (Batches - 1) * BatchPoints;
        var writerRate = measured / writerTime.TotalSeconds;
        var rawRate = measured / rawTime.TotalSeconds;
        output.WriteLine($"InfluxWriter (gzip): {writerRate:N0} points/s ({writerTime.TotalMilliseconds / (Batches - 1):N1} ms per 5,000-point batch)");
        output.WriteLine($"raw POST (no gzip):  {rawRate:N0} points/s ({rawTime.TotalMilliseconds / (Batches - 1):N1} ms per batch)");
        output.WriteLine($"ratio writer/raw: {writerRate / rawRate:N2}; bytes on the wire: {writer.BytesSent:N0} gzip vs {writer.BytesWritten:N0} plain ({(double)writer.BytesWritten / writer.BytesSent:N1}x)");

        Assert.Equal(Batches * BatchPoints, await InfluxFixture.CountAsync(writerOptions, "jvm.memory.used", "used"));
        Assert.Equal(Batches * BatchPoints, await InfluxFixture.CountAsync(rawOptions, "jvm.memory.used", "used"));
        Assert.Equal(Batches * BatchPoints, writer.PointsWritten);
        Assert.Equal(Batches, writer.Batches);
    }
}
