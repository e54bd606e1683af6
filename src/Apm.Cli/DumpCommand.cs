using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Apm.Server;

namespace Apm.Cli;

/// <summary>
/// <c>apm dump &lt;jvm-id&gt; [--all] [--no-wait] [--timeout 15m] [--url http://127.0.0.1:5080] [--api-key KEY]</c>: asks
/// the JVM's collector, through a running Apm's API, for a heap dump and its triage, then follows the command
/// (<c>GET /api/commands/{id}</c>) and prints each state change with its reason until it is done or refused.
/// Exit codes: 0 done (or sent, with --no-wait), 1 refused or failed (the reason is printed), 2 usage, 3 no outcome
/// within the timeout.
/// </summary>
internal static class DumpCommand
{
    private const string Usage = "usage: apm dump <jvm-id> [--all] [--no-wait] [--timeout 15m] [--url http://127.0.0.1:5080] [--api-key KEY]  (ids: GET /api/jvms)";

    /// <summary>How often the command's state is read while waiting.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken ct)
    {
        string? jvm = null;
        var url = Environment.GetEnvironmentVariable("APM_URL") ?? "http://127.0.0.1:5080";
        var key = Environment.GetEnvironmentVariable("Apm__Auth__ApiKey");
        var all = false;
        var wait = true;
        // A dump, its full GC and the triage of a large heap take minutes; the collector's triage gives up after 30.
        var timeout = TimeSpan.FromMinutes(15);
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--url" when i + 1 < args.Length:
                    url = args[++i];
                    break;
                case "--api-key" when i + 1 < args.Length:
                    key = args[++i];
                    break;
                case "--timeout" when i + 1 < args.Length && ApiEndpoints.TryParseDuration(args[i + 1], out timeout):
                    i++;
                    break;
                case "--all":
                    all = true;
                    break;
                case "--no-wait":
                    wait = false;
                    break;
                default:
                    if (jvm is null && !args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        jvm = args[i];
                        break;
                    }

                    await error.WriteLineAsync(Usage).ConfigureAwait(false);
                    return 2;
            }
        }

        if (jvm is null || !Uri.TryCreate(url, UriKind.Absolute, out var baseUri))
        {
            await error.WriteLineAsync(Usage).ConfigureAwait(false);
            return 2;
        }

        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(30) };
        if (!string.IsNullOrEmpty(key)) http.DefaultRequestHeaders.Add("X-Api-Key", key);
        // Marks the request as not cross-site (docs/api.md), needed when no API key is configured.
        http.DefaultRequestHeaders.Add(ApiKeyMiddleware.RequestHeader, "1");
        try
        {
            using var response = await http.PostAsync($"/api/jvms/{Uri.EscapeDataString(jvm)}/heap-dump?trigger=cli{(all ? "&all=true" : "")}", null, ct).ConfigureAwait(false);
            var body = await ReadJsonAsync(response, ct).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                await error.WriteLineAsync($"apm: refused ({(int)response.StatusCode}): {ErrorOf(body) ?? response.ReasonPhrase}").ConfigureAwait(false);
                return 1;
            }

            var id = body.GetProperty("commandId").GetString()!;
            var status = response.Headers.Location?.OriginalString ?? "/api/commands/" + id;
            await output.WriteLineAsync($"heap dump requested: command {id} for {jvm} on {body.GetProperty("host").GetString()}").ConfigureAwait(false);
            if (!wait)
            {
                await output.WriteLineAsync($"follow it at {new Uri(baseUri, status)}; the report will be listed at {new Uri(baseUri, "reports")}").ConfigureAwait(false);
                return 0;
            }

            return await FollowAsync(http, baseUri, status, timeout, output, error, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await error.WriteLineAsync("apm: stopped following the command (it goes on at the collector)").ConfigureAwait(false);
            return 3;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            await error.WriteLineAsync($"apm: could not reach Apm at {baseUri}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Reads the command until it is finished; prints every new step.</summary>
    private static async Task<int> FollowAsync(HttpClient http, Uri baseUri, string status, TimeSpan timeout, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        var printed = 0;
        while (true)
        {
            using (var response = await http.GetAsync(status, ct).ConfigureAwait(false))
            {
                // 404: nothing recorded yet (the API could not write the "requested" step, and no collector answered yet).
                if (response.StatusCode != HttpStatusCode.NotFound)
                {
                    var body = await ReadJsonAsync(response, ct).ConfigureAwait(false);
                    if (!response.IsSuccessStatusCode)
                    {
                        await error.WriteLineAsync($"apm: cannot follow the command ({(int)response.StatusCode}): {ErrorOf(body) ?? response.ReasonPhrase}").ConfigureAwait(false);
                        return 1;
                    }

                    var steps = body.GetProperty("steps").EnumerateArray().ToList();
                    for (; printed < steps.Count; printed++) await output.WriteLineAsync(Describe(steps[printed])).ConfigureAwait(false);
                    var state = body.GetProperty("state").GetString();
                    if (state == "done")
                    {
                        var report = body.TryGetProperty("reportId", out var r) ? r.GetString() : null;
                        await output.WriteLineAsync(report is null ? "done" : $"report: {new Uri(baseUri, "reports/" + report)}").ConfigureAwait(false);
                        return 0;
                    }

                    if (state == "failed")
                    {
                        await error.WriteLineAsync($"apm: the collector refused or failed the dump ({Text(body, "failure") ?? "failed"}): {Text(body, "reason")}").ConfigureAwait(false);
                        return 1;
                    }

                    if (body.TryGetProperty("unanswered", out var u) && u.GetBoolean())
                    {
                        await error.WriteLineAsync($"apm: no collector took the command before it expired at {Text(body, "expiresAt")} (is the collector of host {Text(body, "host")} running?)").ConfigureAwait(false);
                        return 1;
                    }
                }
            }

            if (DateTime.UtcNow >= deadline)
            {
                await error.WriteLineAsync($"apm: no outcome within {timeout}; the command goes on, follow it at {new Uri(baseUri, status)}").ConfigureAwait(false);
                return 3;
            }

            await Task.Delay(PollInterval, ct).ConfigureAwait(false);
        }
    }

    private static string Describe(JsonElement step)
    {
        var time = step.TryGetProperty("time", out var t) && t.TryGetDateTimeOffset(out var at)
            ? at.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture) + " "
            : "";
        var failure = Text(step, "failure");
        var reason = Text(step, "reason");
        return $"{time}{Text(step, "state")}{(failure is null ? "" : " (" + failure + ")")}{(reason is null ? "" : ": " + reason)}";
    }

    private static string? Text(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;

    private static string? ErrorOf(JsonElement body) => Text(body, "error");

    private static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        if (text.Length == 0) return default;
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            return default;
        }
    }
}
