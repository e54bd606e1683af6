using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Testing;

namespace Apm.EndToEnd.Tests;

/// <summary>Heap-dump upload through the API: streamed to disk, limited, checked, triaged in a child process, stored.</summary>
public sealed class ReportUploadTests
{
    [Fact]
    public async Task Uploads_that_are_not_HPROF_truncated_too_large_or_hostile_get_clear_errors_nothing_lands_outside_the_store_and_retention_applies()
    {
        await using var pipeline = await Pipeline.StartAsync();
        var root = Directory.CreateTempSubdirectory("apm-upload-");
        var store = Path.Combine(root.FullName, "reports");
        try
        {
            using var jvm = JavaFixture.Start("CancelTimerLeak", ["-Xmx64m", "-XX:+UseSerialGC"], ["2000"]);
            await jvm.WaitForOutputAsync("READY", TimeSpan.FromSeconds(30));
            var dumpPath = Path.Combine(root.FullName, "real.hprof");
            jvm.Jcmd("GC.heap_dump", dumpPath);
            var dump = await File.ReadAllBytesAsync(dumpPath);
            File.Delete(dumpPath);
            var limit = dump.Length + (512 * 1024);
            // Three reports already stored: two recent ones, and one beyond the configured age limit.
            var recent = new string('a', 32);
            var older = new string('b', 32);
            var old = new string('c', 32);
            var seeded = new Apm.Reports.ReportStore(store);
            foreach (var (seedId, age) in new[] { (recent, TimeSpan.FromMinutes(1)), (older, TimeSpan.FromMinutes(2)), (old, TimeSpan.FromDays(10)) })
                seeded.Save(new Apm.Reports.ReportMeta(seedId, "h:1:1", "h", "com.example.Seed", DateTimeOffset.UtcNow - age, "cli", "", "", "seeded", 1), "{}"u8, "<p>seeded</p>"u8);
            var api = await pipeline.StartApiAsync(settings: new Dictionary<string, string?>
            {
                ["Apm:Reports:Directory"] = store,
                ["Apm:Reports:MaxUploadBytes"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Apm:Reports:MaxReports"] = "2",
                ["Apm:Reports:MaxAge"] = "7.00:00:00",
            });

            async Task<(HttpStatusCode Status, JsonElement Body)> Post(HttpContent content, string name)
            {
                // Expect: 100-continue lets the server refuse before the client sends a body it will not read.
                using var request = new HttpRequestMessage(HttpMethod.Post, "/api/reports/upload?name=" + Uri.EscapeDataString(name)) { Content = content };
                request.Headers.ExpectContinue = true;
                request.Headers.Add("X-Apm-Request", "1");
                using var response = await api.SendAsync(request);
                var raw = await response.Content.ReadAsStringAsync();
                return (response.StatusCode, raw.Length == 0 ? default : JsonDocument.Parse(raw).RootElement.Clone());
            }

            var text = await Post(new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("not a heap dump ", 1000)))), "notes.txt");
            Assert.Equal(HttpStatusCode.BadRequest, text.Status);
            Assert.Contains("not an HPROF", text.Body.GetProperty("error").GetString(), StringComparison.Ordinal);

            var truncated = await Post(new ByteArrayContent(dump[..(dump.Length / 3)]), "cut.hprof");
            Assert.Equal(HttpStatusCode.BadRequest, truncated.Status);
            Assert.Contains("cannot be read", truncated.Body.GetProperty("error").GetString(), StringComparison.Ordinal);

            // Too large, announced by Content-Length, and too large while streaming (chunked, no length).
            var big = new byte[limit + 1024];
            dump.CopyTo(big, 0);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await Post(new ByteArrayContent(big), "big.hprof")).Status);
            var chunked = new StreamContent(new MemoryStream(big));
            chunked.Headers.ContentLength = null;
            var streamed = await Post(chunked, "big2.hprof");
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.Status);

            // A real dump under a hostile name: triaged and stored; the name is only shown, sanitized.
            var ok = await Post(new ByteArrayContent(dump), "../../../../tmp/evil\r\n<script>.hprof");
            Assert.Equal(HttpStatusCode.Created, ok.Status);
            var id = ok.Body.GetProperty("id").GetString()!;
            Assert.Contains("CancelTimerLeak$CancelTimerLeakStatement", ok.Body.GetProperty("topFinding").GetString(), StringComparison.Ordinal);
            // The upload went through the configured store: the report past MaxAge is gone, and only MaxReports (the newest) are kept.
            var all = (await api.GetFromJsonAsync<JsonElement>("/api/reports")).EnumerateArray().ToList();
            Assert.Equal([id, recent], all.Select(r => r.GetProperty("id").GetString()));
            var listed = all[0];
            Assert.Equal("evil<script>.hprof", listed.GetProperty("mainClass").GetString()); // last segment, CR/LF dropped
            Assert.StartsWith("upload:", listed.GetProperty("trigger").GetString(), StringComparison.Ordinal);

            // Nothing outside the store, and no upload left behind inside it.
            Assert.Equal([Path.Combine(root.FullName, "reports")], Directory.EnumerateFileSystemEntries(root.FullName));
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(store, ".uploads")));
            Assert.Equal(new[] { id, recent, ".uploads" }.Order(StringComparer.Ordinal), Directory.EnumerateDirectories(store).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.False(File.Exists("/tmp/evil"));
        }
        finally
        {
            root.Delete(true);
        }
    }
}
