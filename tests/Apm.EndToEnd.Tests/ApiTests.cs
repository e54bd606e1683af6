using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Collector;
using Apm.Server;

namespace Apm.EndToEnd.Tests;

/// <summary>The JSON API against a real influxd filled through the real pipeline.</summary>
public sealed class ApiTests
{
    [Fact]
    public async Task Status_reason_hostile_names_and_bad_requests_are_answered_correctly()
    {
        await using var pipeline = await Pipeline.StartAsync();
        using var aggregator = pipeline.StartAggregator();
        var api = await pipeline.StartApiAsync(staleAfter: TimeSpan.FromSeconds(5));
        var metrics = new CollectorMetrics();
        using var publisher = pipeline.CreatePublisher(metrics);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        var hostile = "<script>alert('x')</script>, \"quoted\" = main";
        var live = Pipeline.SyntheticSample("api:1:live", 1, now);
        live.Sample.Jvm.MainClass = hostile;
        publisher.Publish(live);
        publisher.Publish(Pipeline.SyntheticSample("api:2:stale", 1, now - 60_000_000_000));
        var unreadable = new Protocol.V1.CollectorMessage
        {
            Status = new Protocol.V1.JvmStatus
            {
                Jvm = new Protocol.V1.JvmIdentity { JvmId = "api:3:broken", Host = "test-host", Pid = 3 },
                State = Protocol.V1.JvmStatus.Types.State.Unreadable,
                Reason = "bad magic 0x00000000",
                TimeUnixNanos = now,
            },
        };
        publisher.Publish(unreadable);
        publisher.Flush(TimeSpan.FromSeconds(10));

        JsonElement list = default;
        Assert.True(await Pipeline.EventuallyAsync(async () =>
        {
            list = await api.GetFromJsonAsync<JsonElement>("/api/jvms");
            return list.GetArrayLength() == 3;
        }, TimeSpan.FromSeconds(30)));
        var byId = list.EnumerateArray().ToDictionary(j => j.GetProperty("id").GetString()!);
        Assert.Equal("live", byId["api:1:live"].GetProperty("status").GetString());
        Assert.Equal(hostile, byId["api:1:live"].GetProperty("mainClass").GetString()); // stored and returned as data, unchanged
        Assert.Equal("stale", byId["api:2:stale"].GetProperty("status").GetString());
        Assert.Equal("unreadable", byId["api:3:broken"].GetProperty("status").GetString());
        Assert.Equal("bad magic 0x00000000", byId["api:3:broken"].GetProperty("reason").GetString());

        // The raw JSON never carries the markup unescaped.
        var raw = await api.GetStringAsync("/api/jvms");
        Assert.DoesNotContain("<script>", raw, StringComparison.Ordinal);

        // Unknown JVM: an empty series list, not an error; an id with quotes cannot break out of the query.
        var none = await api.GetFromJsonAsync<JsonElement>("/api/jvms/x'%20OR%20'1'='1/metrics/jvm.memory.used");
        Assert.Equal(0, none.GetProperty("series").GetArrayLength());

        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/api/jvms/api:1:live/metrics/jvm.memory.used\"%3B DROP")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/api/jvms/api:1:live/metrics/jvm.memory.used?from=yesterday")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/api/jvms/api:1:live/metrics/jvm.memory.used?from=-1h&to=-2h")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("/api/jvms/api:1:live/metrics/jvm.memory.used?step=0s")).StatusCode);

        var used = await api.GetFromJsonAsync<JsonElement>("/api/jvms/api:1:live/metrics/jvm.memory.used?from=-10m");
        Assert.Equal("By", used.GetProperty("unit").GetString());
        var pools = used.GetProperty("series").EnumerateArray().Select(s => s.GetProperty("labels").GetProperty("pool").GetString()).Order().ToList();
        Assert.Equal(["eden", "old"], pools);

        var health = await api.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        await pipeline.Influx.Server.StopAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await api.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task With_an_api_key_configured_the_api_requires_it_and_healthz_stays_open()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var api = await pipeline.StartApiAsync(apiKey: "s3cret-key");
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.GetAsync("/api/jvms")).StatusCode);
        using (var wrong = new HttpRequestMessage(HttpMethod.Get, "/api/jvms"))
        {
            wrong.Headers.Add("X-Api-Key", "s3cret-kez");
            Assert.Equal(HttpStatusCode.Unauthorized, (await api.SendAsync(wrong)).StatusCode);
        }

        using (var header = new HttpRequestMessage(HttpMethod.Get, "/api/jvms"))
        {
            header.Headers.Add("X-Api-Key", "s3cret-key");
            Assert.Equal(HttpStatusCode.OK, (await api.SendAsync(header)).StatusCode);
        }

        using (var bearer = new HttpRequestMessage(HttpMethod.Get, "/api/jvms"))
        {
            bearer.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "s3cret-key");
            Assert.Equal(HttpStatusCode.OK, (await api.SendAsync(bearer)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/healthz")).StatusCode);
    }

    [Theory]
    [InlineData("http://127.0.0.1:5080", null, null)]
    [InlineData("http://localhost:5080", null, null)]
    [InlineData("http://[::1]:5080", null, null)]
    [InlineData("http://0.0.0.0:5080", null, "http://0.0.0.0:5080")]
    [InlineData("http://+:5080", null, "http://+:5080")]
    [InlineData("http://10.1.2.3:5080", null, "http://10.1.2.3:5080")]
    [InlineData("http://0.0.0.0:5080", "secret", null)]
    public void Non_loopback_addresses_are_refused_without_authentication(string url, string? apiKey, string? refused) =>
        Assert.Equal(refused, ServerExtensions.FindUnsafeAddress([url], new AuthOptions { ApiKey = apiKey }));
}
