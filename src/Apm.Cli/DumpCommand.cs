using System.Net.Http.Json;
using System.Text.Json;

namespace Apm.Cli;

/// <summary>
/// <c>apm dump &lt;jvm-id&gt; [--all] [--url http://127.0.0.1:5080] [--api-key KEY]</c>: asks the JVM's collector, through a
/// running Apm's API, for a heap dump and its triage; prints the command id. The report then appears in /api/reports
/// and on the dashboard's reports page. Exit codes: 0 accepted, 1 refused (the reason is printed), 2 usage.
/// </summary>
internal static class DumpCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken ct)
    {
        string? jvm = null;
        var url = Environment.GetEnvironmentVariable("APM_URL") ?? "http://127.0.0.1:5080";
        var key = Environment.GetEnvironmentVariable("Apm__Auth__ApiKey");
        var all = false;
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
                case "--all":
                    all = true;
                    break;
                default:
                    if (jvm is null && !args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        jvm = args[i];
                        break;
                    }

                    await error.WriteLineAsync("usage: apm dump <jvm-id> [--all] [--url http://127.0.0.1:5080] [--api-key KEY]").ConfigureAwait(false);
                    return 2;
            }
        }

        if (jvm is null || !Uri.TryCreate(url, UriKind.Absolute, out var baseUri))
        {
            await error.WriteLineAsync("usage: apm dump <jvm-id> [--all] [--url http://127.0.0.1:5080] [--api-key KEY]  (ids: GET /api/jvms)").ConfigureAwait(false);
            return 2;
        }

        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(30) };
        if (!string.IsNullOrEmpty(key)) http.DefaultRequestHeaders.Add("X-Api-Key", key);
        try
        {
            using var response = await http.PostAsync($"/api/jvms/{Uri.EscapeDataString(jvm)}/heap-dump{(all ? "?all=true" : "")}", null, ct).ConfigureAwait(false);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct).ConfigureAwait(false);
            if ((int)response.StatusCode == 202)
            {
                await output.WriteLineAsync($"heap dump requested: command {body.GetProperty("commandId").GetString()} for {jvm} on {body.GetProperty("host").GetString()}; the report will be listed at {baseUri}reports").ConfigureAwait(false);
                return 0;
            }

            var reason = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("error", out var e) ? e.GetString() : response.ReasonPhrase;
            await error.WriteLineAsync($"apm: refused ({(int)response.StatusCode}): {reason}").ConfigureAwait(false);
            return 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            await error.WriteLineAsync($"apm: could not reach Apm at {baseUri}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}
