using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Text;
using Apm.Influx;
using Apm.Testing;

namespace Apm.Influx.Tests;

/// <summary>Retries against a real influxd that goes away and comes back.</summary>
public class RetryTests
{
    private static string Points(int n, string measurement)
    {
        var lp = new LineProtocolBuilder();
        for (var i = 0; i < n; i++) lp.Measurement(measurement).Tag("jvm", "7").Field("v", (long)i).Timestamp(1_000_000 + i);
        return lp.ToString();
    }

    [Fact]
    public async Task A_write_in_flight_while_influxd_is_down_is_stored_once_after_a_restart()
    {
        await using var influx = await InfluxServer.StartAsync();
        var options = influx.Options("retry");
        options.RetryBaseDelay = TimeSpan.FromMilliseconds(100);
        options.RetryMaxDelay = TimeSpan.FromSeconds(1);
        options.MaxRetries = 120;
        using var writer = new InfluxWriter(options);
        await writer.EnsureDatabaseAsync();
        var port = influx.Server.HttpPort;

        await influx.Server.StopAsync();
        Assert.False(influx.Server.IsRunning);
        Assert.Contains("Server shutdown completed", await File.ReadAllTextAsync(influx.Server.LogPath), StringComparison.Ordinal); // SIGTERM, not a kill
        Assert.False(await writer.PingAsync());
        var write = writer.WriteAsync(Points(500, "retried"));

        // The write is really in flight against a dead server: it has failed and retried a few times.
        while (writer.Retries < 3 && !write.IsCompleted) await Task.Delay(50);
        Assert.False(write.IsCompleted, "the write ended while the server was down: " + write.Exception?.Message);

        await influx.Server.StartAgainAsync();
        await write;

        Assert.Equal(port, influx.Server.HttpPort);
        Assert.Equal(500, await InfluxFixture.CountAsync(options, "retried", "v"));
        Assert.Equal(500, writer.PointsWritten);
        Assert.Equal(1, writer.Batches);
        Assert.Equal(0, writer.Failures);
        Assert.True(writer.Retries >= 3);
        Assert.Contains("Listening on HTTP", await File.ReadAllTextAsync(influx.Server.LogPath), StringComparison.Ordinal);

        // Disposing stops influxd and deletes its directory.
        var pid = influx.Server.ProcessId!.Value;
        var dir = influx.Server.Directory;
        await influx.DisposeAsync();
        Assert.False(Directory.Exists(dir));
        Assert.False(Directory.Exists("/proc/" + pid));
    }

    [Fact]
    public async Task A_write_that_runs_out_of_retries_fails_with_the_connection_error()
    {
        var options = new InfluxOptions
        {
            Url = new Uri("http://127.0.0.1:" + FreePort.Next()),
            MaxRetries = 2,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(20),
        };
        using var writer = new InfluxWriter(options);
        var e = await Assert.ThrowsAsync<InfluxWriteException>(() => writer.WriteAsync("m v=1 1\n"));
        Assert.Null(e.StatusCode);
        Assert.False(e.IsRejected);
        Assert.Contains("3 attempt(s)", e.Message, StringComparison.Ordinal);
        Assert.Contains("connection", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, writer.Retries);
        Assert.Equal(1, writer.Failures);
        Assert.Equal(0, writer.PointsWritten);
    }
}

/// <summary>
/// Unit tests of the writer's HTTP behaviour with a scripted handler (answers a real server would only give under
/// load: 429 with Retry-After, 503). Every end-to-end claim is made against the real influxd above.
/// </summary>
public class WriterHttpTests
{
    private sealed class ScriptedHandler(params Func<HttpResponseMessage>[] answers) : HttpMessageHandler
    {
        public List<(HttpRequestMessage Request, byte[] Body)> Requests { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken);
            Requests.Add((request, body));
            return answers[Math.Min(Requests.Count - 1, answers.Length - 1)]();
        }
    }

    private static HttpResponseMessage Answer(HttpStatusCode status, string? error = null, TimeSpan? retryAfter = null)
    {
        var r = new HttpResponseMessage(status);
        if (error != null) r.Content = new StringContent($"{{\"error\":\"{error}\"}}");
        if (retryAfter != null) r.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(retryAfter.Value);
        return r;
    }

    [Fact]
    public async Task Too_many_requests_and_unavailable_are_retried_and_Retry_After_is_honoured()
    {
        var handler = new ScriptedHandler(
            () => Answer(HttpStatusCode.TooManyRequests, "slow down", TimeSpan.FromSeconds(1)),
            () => Answer(HttpStatusCode.ServiceUnavailable, "busy"),
            () => Answer(HttpStatusCode.NoContent));
        using var http = new HttpClient(handler);
        var options = new InfluxOptions
        {
            Url = new Uri("http://127.0.0.1:1/base/"), Database = "my db", RetentionPolicy = "rp", Token = "abc",
            RetryBaseDelay = TimeSpan.FromMilliseconds(1), RetryMaxDelay = TimeSpan.FromMilliseconds(5),
        };
        using var writer = new InfluxWriter(options, http);
        var sw = Stopwatch.StartNew();
        await writer.WriteAsync("m v=1 1\n");
        sw.Stop();

        Assert.Equal(3, handler.Requests.Count);
        Assert.Equal(2, writer.Retries);
        Assert.Equal(1, writer.PointsWritten);
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(950), $"Retry-After of 1 s was not honoured: {sw.Elapsed}");

        var (request, body) = handler.Requests[^1];
        Assert.Equal("http://127.0.0.1:1/base/write?db=my%20db&rp=rp&precision=ns", request.RequestUri!.AbsoluteUri);
        Assert.Equal("Token abc", request.Headers.Authorization!.ToString());
        Assert.Equal("gzip", Assert.Single(request.Content!.Headers.ContentEncoding));
        using var gz = new GZipStream(new MemoryStream(body), CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        Assert.Equal("m v=1 1\n", await reader.ReadToEndAsync());
    }

    [Fact]
    public async Task Client_errors_are_not_retried_and_credentials_go_in_a_header_not_the_url()
    {
        var handler = new ScriptedHandler(() => Answer(HttpStatusCode.Unauthorized, "authorization failed"));
        using var http = new HttpClient(handler);
        var options = new InfluxOptions { Url = new Uri("http://127.0.0.1:1"), Username = "u", Password = "p@ss" };
        using var writer = new InfluxWriter(options, http);

        var e = await Assert.ThrowsAsync<InfluxWriteException>(() => writer.WriteAsync("m v=1 1\n"));

        Assert.Equal(HttpStatusCode.Unauthorized, e.StatusCode);
        Assert.Equal("authorization failed", e.ServerError);
        Assert.DoesNotContain("p@ss", e.Message, StringComparison.Ordinal);
        var request = Assert.Single(handler.Requests).Request;
        Assert.DoesNotContain("p@ss", request.RequestUri!.ToString(), StringComparison.Ordinal);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:p@ss")), request.Headers.Authorization!.ToString());
        Assert.Equal(0, writer.Retries);
        Assert.Equal(1, writer.Failures);
    }

    [Fact]
    public void Backoff_grows_exponentially_with_jitter_and_is_capped()
    {
        var options = new InfluxOptions { Url = new Uri("http://127.0.0.1:1"), RetryBaseDelay = TimeSpan.FromMilliseconds(100), RetryMaxDelay = TimeSpan.FromSeconds(2) };
        using var http = new InfluxHttp(options, null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        for (var i = 0; i < 50; i++)
        {
            var d0 = http.Backoff(0, null);
            Assert.InRange(d0.TotalMilliseconds, 50, 100);
            var d3 = http.Backoff(3, null);
            Assert.InRange(d3.TotalMilliseconds, 400, 800);
            Assert.InRange(http.Backoff(40, null).TotalMilliseconds, 1000, 2000);
            Assert.Equal(TimeSpan.FromSeconds(30), http.Backoff(0, TimeSpan.FromSeconds(30)));
            Assert.Equal(TimeSpan.FromMinutes(5), http.Backoff(0, TimeSpan.FromHours(3)));
        }
    }

    [Fact]
    public void The_default_retries_ride_out_a_30_second_outage()
    {
        var options = new InfluxOptions { Url = new Uri("http://127.0.0.1:1") };
        using var http = new InfluxHttp(options, null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        for (var sample = 0; sample < 50; sample++)
        {
            var window = TimeSpan.Zero;
            for (var attempt = 0; attempt < options.MaxRetries; attempt++) window += http.Backoff(attempt, null);
            Assert.True(window > TimeSpan.FromSeconds(30), $"retry window {window} is shorter than a 30 s outage");
        }
    }

    [Fact]
    public async Task An_oversized_query_answer_fails_instead_of_filling_memory()
    {
        var big = "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"m\",\"columns\":[\"v\"],\"values\":[" +
                  string.Join(',', Enumerable.Repeat("[1]", 2000)) + "]}]}]}";
        var handler = new ScriptedHandler(() => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(big) });
        using var http = new HttpClient(handler);
        using var query = new InfluxQueryClient(new InfluxOptions { Url = new Uri("http://127.0.0.1:1"), MaxQueryResponseBytes = 4096 }, http);
        var e = await Assert.ThrowsAsync<InfluxQueryException>(() => query.QueryAsync("SELECT * FROM m"));
        Assert.Contains("limit of 4096", e.Message, StringComparison.Ordinal);
    }

    /// <summary>An answer of unknown length (as influxd streams large ones), written in small pieces.</summary>
    private sealed class UnsizedContent(byte[] bytes, int piece) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            for (var i = 0; i < bytes.Length; i += piece) await stream.WriteAsync(bytes.AsMemory(i, Math.Min(piece, bytes.Length - i)));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    private static byte[] Table(int rows) => Encoding.UTF8.GetBytes(
        "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"m\",\"columns\":[\"v\"],\"values\":[" +
        string.Join(',', Enumerable.Range(0, rows).Select(i => "[" + i + "]")) + "]}]}]}");

    [Theory]
    [InlineData(3)]
    [InlineData(20_000)]
    [InlineData(200_000)]
    public async Task An_answer_of_unknown_length_is_read_whole_across_buffer_growth(int rows)
    {
        var bytes = Table(rows);
        var handler = new ScriptedHandler(() => new HttpResponseMessage(HttpStatusCode.OK) { Content = new UnsizedContent(bytes, 1000) });
        using var http = new HttpClient(handler);
        using var query = new InfluxQueryClient(new InfluxOptions { Url = new Uri("http://127.0.0.1:1") }, http);
        for (var round = 0; round < 3; round++)
        {
            // Several rounds: a buffer returned to the pool and rented again must not leak an earlier answer's bytes.
            var series = Assert.Single((await query.QueryAsync("SELECT * FROM m")).Series);
            Assert.Equal(rows, series.Values.Count);
            Assert.Equal(0, series.GetDouble(0, "v"));
            Assert.Equal(rows - 1, series.GetDouble(rows - 1, "v"));
        }
    }

    [Fact]
    public async Task The_query_limit_holds_for_answers_of_unknown_length_and_an_answer_of_exactly_the_limit_is_read()
    {
        var bytes = Table(5_000);
        var handler = new ScriptedHandler(() => new HttpResponseMessage(HttpStatusCode.OK) { Content = new UnsizedContent(bytes, 777) });
        using var http = new HttpClient(handler);
        using var exact = new InfluxQueryClient(new InfluxOptions { Url = new Uri("http://127.0.0.1:1"), MaxQueryResponseBytes = bytes.Length }, http);
        Assert.Equal(5_000, Assert.Single((await exact.QueryAsync("SELECT * FROM m")).Series).Values.Count);

        using var http2 = new HttpClient(handler);
        using var oneShort = new InfluxQueryClient(new InfluxOptions { Url = new Uri("http://127.0.0.1:1"), MaxQueryResponseBytes = bytes.Length - 1 }, http2);
        var e = await Assert.ThrowsAsync<InfluxQueryException>(() => oneShort.QueryAsync("SELECT * FROM m"));
        Assert.Contains("larger than the limit of " + (bytes.Length - 1), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_query_answers_fail_with_a_clear_error()
    {
        foreach (var bad in new[] { "", "[]", "{\"results\":5}", "{\"results\":[{\"series\":[{\"columns\":[1]}]}]}", "{\"results\":[" })
        {
            var e = Assert.Throws<InfluxQueryException>(() => InfluxQueryClient.Parse(Encoding.UTF8.GetBytes(bad)));
            Assert.False(string.IsNullOrEmpty(e.Message));
        }
    }
}

public class LocalInfluxServerConfigTests
{
    [Fact]
    public async Task Influxd_stops_when_the_process_that_started_it_dies()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apm-influx-owner-" + Guid.NewGuid().ToString("N")[..8]);
        using var owner = Process.Start(new ProcessStartInfo("sleep", "600") { UseShellExecute = false })!;
        try
        {
            await using var server = await LocalInfluxServer.StartOwnedAsync(dir, null, null, null, null, null, owner.Id, CancellationToken.None);
            var pid = server.ProcessId!.Value;
            owner.Kill();
            await owner.WaitForExitAsync();

            // The watchdog polls once a second; the bound only keeps a broken watchdog from hanging the run.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (server.IsRunning && DateTime.UtcNow < deadline) await Task.Delay(100);
            Assert.False(server.IsRunning, $"influxd {pid} still runs after its owner died");
            Assert.Contains("Server shutdown completed", server.LogTail(), StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task A_missing_influxd_fails_with_a_clear_reason()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apm-influx-missing-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => LocalInfluxServer.StartAsync(dir, influxdPath: Path.Combine(dir, "no-influxd")));
            Assert.Contains("influxd was not found", e.Message, StringComparison.Ordinal);
            Assert.Null(LocalInfluxServer.FindOnPath("influxd", "/nonexistent-a:/nonexistent-b"));
            Assert.Null(LocalInfluxServer.FindOnPath("influxd", null));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void The_config_moves_paths_and_listeners_and_turns_off_reporting()
    {
        const string defaults = "reporting-enabled = true\nbind-address = \"127.0.0.1:8088\"\n\n[meta]\n  dir = \"/var/lib/influxdb/meta\"\n" +
            "[data]\n  dir = \"/var/lib/influxdb/data\"\n  wal-dir = \"/var/lib/influxdb/wal\"\n[monitor]\n  store-enabled = true\n" +
            "[http]\n  bind-address = \":8086\"\n[[graphite]]\n  bind-address = \":2003\"\n";
        var config = LocalInfluxServer.RewriteConfig(defaults, "/data/x", 1234, 5678);

        Assert.Contains("reporting-enabled = false", config, StringComparison.Ordinal);
        Assert.Contains("bind-address = \"127.0.0.1:5678\"", config, StringComparison.Ordinal);
        Assert.Contains("dir = \"/data/x/meta\"", config, StringComparison.Ordinal);
        Assert.Contains("wal-dir = \"/data/x/wal\"", config, StringComparison.Ordinal);
        Assert.Contains("store-enabled = false", config, StringComparison.Ordinal);
        Assert.Contains("bind-address = \"127.0.0.1:1234\"", config, StringComparison.Ordinal);
        Assert.Contains("bind-address = \":2003\"", config, StringComparison.Ordinal); // array tables untouched
        Assert.DoesNotContain("/var/lib/influxdb", config, StringComparison.Ordinal);
        Assert.Contains("suppress-write-log = true", config, StringComparison.Ordinal); // added to [http]

        var upstream = LocalInfluxServer.RewriteConfig("[meta]\n  dir = \"/m\"\n[http]\n", "/d", 1, 2);
        Assert.StartsWith("bind-address = \"127.0.0.1:2\"\nreporting-disabled = true\n", upstream, StringComparison.Ordinal);
    }
}
