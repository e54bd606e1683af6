using System.Net;
using System.Text.Json;
using Apm.Dashboard.Live;
using Apm.Influx;
using Apm.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Apm.Dashboard.Tests;

/// <summary>The live poller over a real influxd that goes away and comes back.</summary>
public sealed class LiveTests
{
    [Fact]
    public async Task An_influxdb_outage_reaches_browsers_as_an_error_event_and_the_stream_recovers_after_it()
    {
        await using var influx = await InfluxServer.StartAsync();
        var options = new InfluxOptions { Url = influx.Url, Database = "apm", MaxRetries = 0, Timeout = TimeSpan.FromSeconds(2) };
        using (var writer = new InfluxWriter(options))
        {
            await writer.EnsureDatabaseAsync();
            await writer.WriteAsync(new LineProtocolBuilder().Measurement("apm.jvm.info").Tag("host", "h").Tag("jvm_id", "h:1:1").Field("status", "live").Field("pid", 1L)
                .Field("main_class", "Main").Timestamp(DateTimeOffset.UtcNow));
        }

        await using var host = await DashboardHost.StartAsync(options);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var response = await host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri("dashboard/events", UriKind.Relative)), HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));

        Assert.Equal("h:1:1", (await NextAsync(reader, "fleet", cts.Token)).GetProperty("rows")[0].GetProperty("id").GetString());
        var outage = influx.OutageAsync(TimeSpan.FromSeconds(4));
        var error = await NextAsync(reader, "error", cts.Token);
        Assert.StartsWith("InfluxDB could not be read", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        await outage;
        Assert.Equal("h:1:1", (await NextAsync(reader, "fleet", cts.Token)).GetProperty("rows")[0].GetProperty("id").GetString());

        var counters = host.Services.GetRequiredService<LiveHub>().ReadCounters().ToDictionary(c => c.Key, c => c.Value);
        Assert.True(counters["dashboard.poll_failures"] >= 1);
        Assert.Equal(1, counters["dashboard.sse_clients"]);
    }

    private static async Task<JsonElement> NextAsync(StreamReader reader, string name, CancellationToken ct)
    {
        string? evt = null;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) evt = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && evt == name) return JsonDocument.Parse(line[6..]).RootElement.Clone();
        }

        throw new InvalidOperationException("the stream ended without a " + name + " event");
    }
}
