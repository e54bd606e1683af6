using System.Security.Claims;
using Apm.Dashboard.Components;
using Apm.Dashboard.Components.Pages;
using Apm.Dashboard.Live;
using Apm.Dashboard.Panels;
using Apm.Influx;
using Apm.Server;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Apm.Dashboard;

/// <summary>Registers and maps the dashboard. Call after AddApmApi / UseApmApi (it reuses their query services).</summary>
public static class DashboardExtensions
{
    /// <summary>Where the embedded wwwroot is served.</summary>
    public const string AssetsPath = "/_apm";

    /// <summary>
    /// The Content-Security-Policy of every dashboard answer: scripts, styles and connections only from this origin
    /// (no inline script, no CDN), no framing.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>
    /// The dashboard's services: panel definitions (loaded and validated now: a broken file throws with its name),
    /// the fleet and chart queries, the live poller, Razor components, antiforgery, and cookie
    /// login when <c>Apm:Auth:Users</c> is set. Needs <see cref="ServerExtensions.AddApmApi"/>.
    /// </summary>
    public static IServiceCollection AddApmDashboard(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.Configure<DashboardOptions>(configuration.GetSection(DashboardOptions.Section));
        var dashboard = configuration.GetSection(DashboardOptions.Section).Get<DashboardOptions>() ?? new DashboardOptions();
        if (dashboard.PollInterval < TimeSpan.FromMilliseconds(100)) throw new InvalidOperationException("Apm:Dashboard:PollInterval must be at least 100 ms.");
        if (dashboard.ChartPoints is < 10 or > 100_000) throw new InvalidOperationException("Apm:Dashboard:ChartPoints must be between 10 and 100000.");
        services.AddSingleton(PanelDefinitions.Load(dashboard.PanelsDirectory));
        services.AddSingleton<FleetQueries>();
        services.AddSingleton(sp => new ChartQueries(sp.GetRequiredService<InfluxQueryClient>(), sp.GetRequiredService<PanelDefinitions>(),
            sp.GetService<InfluxOptions>(), sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<DashboardOptions>>().Value));
        services.AddSingleton<LiveHub>();
        services.AddHostedService(sp => sp.GetRequiredService<LiveHub>());
        services.AddSingleton<ICounterSource>(sp => sp.GetRequiredService<LiveHub>());
        services.AddRazorComponents();
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "apm.af";
            o.Cookie.SameSite = SameSiteMode.Strict;
        });
        var auth = configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        if (auth.HasUsers)
        {
            services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie(o =>
            {
                o.Cookie.Name = "apm.auth";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Strict;
                o.LoginPath = "/login";
                o.ExpireTimeSpan = TimeSpan.FromHours(12);
                o.SlidingExpiration = true;
            });
        }

        return services;
    }

    /// <summary>
    /// Security headers, the embedded assets under <see cref="AssetsPath"/>, login (when users are configured),
    /// antiforgery, the pages and the SSE stream (<c>/dashboard/events</c>). Reports open through Apm.Server's <c>/reports/{id}</c>.
    /// </summary>
    public static WebApplication UseApmDashboard(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var auth = app.Services.GetRequiredService<AuthOptions>();
        app.Use(static (context, next) =>
        {
            var h = context.Response.Headers;
            // Report pages (/reports/{id}, Apm.Server) replace it with their own, stricter policy.
            h.ContentSecurityPolicy = ContentSecurityPolicy;
            h.XContentTypeOptions = "nosniff";
            h.XFrameOptions = "DENY";
            h["Referrer-Policy"] = "no-referrer";
            return next(context);
        });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = new EmbeddedFileProvider(typeof(DashboardExtensions).Assembly, "Apm.Dashboard.wwwroot"),
            RequestPath = AssetsPath,
            OnPrepareResponse = static c => c.Context.Response.Headers.CacheControl = "no-cache",
        });
        if (auth.HasUsers)
        {
            app.UseAuthentication();
            app.Use(async (context, next) =>
            {
                var path = context.Request.Path;
                var open = path.StartsWithSegments("/login", StringComparison.Ordinal) || path.StartsWithSegments("/account", StringComparison.Ordinal)
                           || path.StartsWithSegments(AssetsPath, StringComparison.Ordinal) || path.StartsWithSegments("/api", StringComparison.Ordinal)
                           || path.StartsWithSegments("/healthz", StringComparison.Ordinal) || path.StartsWithSegments("/metrics", StringComparison.Ordinal);
                if (open || context.User.Identity?.IsAuthenticated == true)
                {
                    await next(context).ConfigureAwait(false);
                    return;
                }

                // The scripts' requests (the event stream, the fleet rows) get a 401, not the login page.
                if (path.StartsWithSegments("/dashboard", StringComparison.Ordinal))
                {
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    return;
                }

                context.Response.Redirect("/login?returnUrl=" + Uri.EscapeDataString(path + context.Request.QueryString));
            });
        }

        else if (auth.Enabled)
        {
            // Only an API key is configured: it protects /api/*, but a browser cannot present it, so the pages would be
            // open to the network. They answer only loopback clients until users are configured.
            app.Use(async (context, next) =>
            {
                if (!IsDashboardReachable(context.Request.Path, context.Connection.RemoteIpAddress, auth))
                {
                    context.Response.StatusCode = StatusCodes.Status403Forbidden;
                    await context.Response.WriteAsync("The dashboard answers only 127.0.0.1 while no users are configured (Apm__Auth__Users__<name>).", context.RequestAborted).ConfigureAwait(false);
                    return;
                }

                await next(context).ConfigureAwait(false);
            });
        }

        app.UseAntiforgery();
        app.MapRazorComponents<App>();
        app.MapGet("/dashboard/events", StreamEventsAsync);
        app.MapGet("/dashboard/fleet-rows", FleetRowsAsync);
        // The JVM page's "capture heap dump" form: antiforgery-checked (form binding), confirmation required.
        app.MapPost("/jvm/heap-dump", RequestHeapDumpAsync);
        // The reports page's upload form (multipart): read section by section and streamed into the report store, never
        // through the form reader's temp files; the antiforgery token (the first section) is checked in the handler.
        var upload = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<UploadOptions>>().Value;
        app.MapPost("/reports/upload", UploadAsync)
            .WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(upload.MaxUploadBytes + FormOverheadBytes))
            .DisableAntiforgery();
        app.MapPost("/account/login", LoginAsync).DisableAntiforgery();
        app.MapPost("/account/logout", LogoutAsync).DisableAntiforgery();
        return app;
    }

    /// <summary>Server-Sent Events: <c>fleet</c> events (no <c>jvm</c> query) or one JVM's <c>jvm</c> events, plus <c>error</c>.</summary>
    private static async Task StreamEventsAsync(HttpContext context, LiveHub hub, IHostApplicationLifetime lifetime, CancellationToken requestAborted)
    {
        // Streams end when the browser leaves or the host stops (else shutdown would wait for every open tab).
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, lifetime.ApplicationStopping);
        var ct = stop.Token;
        var jvm = context.Request.Query["jvm"].ToString();
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        using var subscriber = hub.Subscribe(string.IsNullOrEmpty(jvm) ? null : jvm);
        await context.Response.WriteAsync("retry: 3000\n\n", ct).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(ct).ConfigureAwait(false);
        var reader = subscriber.Events;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                using var keepAlive = CancellationTokenSource.CreateLinkedTokenSource(ct);
                keepAlive.CancelAfter(TimeSpan.FromSeconds(15));
                bool ready;
                try
                {
                    ready = await reader.WaitToReadAsync(keepAlive.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    await context.Response.WriteAsync(": keep-alive\n\n", ct).ConfigureAwait(false);
                    await context.Response.Body.FlushAsync(ct).ConfigureAwait(false);
                    continue;
                }

                if (!ready) return;
                while (reader.TryRead(out var e))
                {
                    try
                    {
                        // JSON from the serializer holds no raw line break, so it is one "data:" line.
                        await context.Response.WriteAsync("event: " + e.Name + "\ndata: ", ct).ConfigureAwait(false);
                        await context.Response.Body.WriteAsync(e.Data, ct).ConfigureAwait(false);
                        await context.Response.WriteAsync("\n\n", ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        e.Release();
                    }
                }

                await context.Response.Body.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The browser left.
        }
    }

    /// <summary>
    /// The fleet page's rows alone (<see cref="FleetTable"/>, the component the page renders them with), filtered and
    /// sorted by the page's own query string: the fleet script fetches it when a live event names a JVM the page does
    /// not know, misses one it shows, or changes a status. Reads the same shared fleet snapshot as the page and the poller.
    /// </summary>
    private static async Task<IResult> FleetRowsAsync(HttpContext context, LiveHub hub, FleetQueries queries, CancellationToken ct)
    {
        FleetSnapshot snapshot;
        try
        {
            snapshot = await hub.GetFleetAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InfluxQueryException or HttpRequestException)
        {
            return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, detail: "InfluxDB could not be read: " + ex.Message);
        }

        var query = context.Request.Query;
        context.Response.Headers.CacheControl = "no-store";
        return new RazorComponentResult<FleetTable>(new Dictionary<string, object?>
        {
            [nameof(FleetTable.Snapshot)] = snapshot,
            [nameof(FleetTable.Definition)] = queries.Definition,
            [nameof(FleetTable.Q)] = NullIfEmpty(query["q"].ToString()),
            [nameof(FleetTable.Status)] = NullIfEmpty(query["status"].ToString()),
            [nameof(FleetTable.Sort)] = NullIfEmpty(query["sort"].ToString()),
            [nameof(FleetTable.Dir)] = NullIfEmpty(query["dir"].ToString()),
        });
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    private static async Task<IResult> LoginAsync(HttpContext context, IAntiforgery antiforgery, AuthOptions auth)
    {
        if (!auth.HasUsers) return Results.NotFound();
        try
        {
            await antiforgery.ValidateRequestAsync(context).ConfigureAwait(false);
        }
        catch (AntiforgeryValidationException)
        {
            return Results.BadRequest("The form expired or did not come from this site; reload the login page.");
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        var user = form["username"].ToString();
        var password = form["password"].ToString();
        var returnUrl = form["returnUrl"].ToString();
        if (!IsLocalUrl(returnUrl)) returnUrl = "/";
        if (user.Length == 0 || !auth.Users.TryGetValue(user, out var hash) || !PasswordHasher.Verify(password, hash))
        {
            return Results.Redirect("/login?failed=1&returnUrl=" + Uri.EscapeDataString(returnUrl));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, user)], CookieAuthenticationDefaults.AuthenticationScheme);
        await context.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme, new ClaimsPrincipal(identity)).ConfigureAwait(false);
        return Results.Redirect(returnUrl);
    }

    private static async Task<IResult> LogoutAsync(HttpContext context, IAntiforgery antiforgery, AuthOptions auth)
    {
        if (!auth.HasUsers) return Results.NotFound();
        try
        {
            await antiforgery.ValidateRequestAsync(context).ConfigureAwait(false);
        }
        catch (AntiforgeryValidationException)
        {
            return Results.BadRequest("The form expired or did not come from this site.");
        }

        await context.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme).ConfigureAwait(false);
        return Results.Redirect("/login");
    }

    /// <summary>
    /// Whether a dashboard request may proceed without users configured: always without any authentication (the host
    /// then listens on loopback only), and with only an API key, for /api/*, /healthz and loopback clients.
    /// </summary>
    internal static bool IsDashboardReachable(PathString path, System.Net.IPAddress? remote, AuthOptions auth)
    {
        if (!auth.Enabled || auth.HasUsers) return true;
        if (path.StartsWithSegments("/api", StringComparison.Ordinal) || path.StartsWithSegments("/healthz", StringComparison.Ordinal)
            || path.StartsWithSegments("/metrics", StringComparison.Ordinal)) return true;
        return remote is not null && System.Net.IPAddress.IsLoopback(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote);
    }

    /// <summary>Room for the upload form's other fields and part headers beyond the file's own limit.</summary>
    private const long FormOverheadBytes = 1 << 20;

    /// <summary>
    /// The upload form, streamed: the first part must be the antiforgery token (the form renders it first), checked
    /// before the file is read; the next part, the file, goes straight to <see cref="ReportUpload.AcceptAsync"/>
    /// (a temp file inside the store, the size limit enforced while it arrives).
    /// </summary>
    private static async Task<IResult> UploadAsync(HttpContext context, IAntiforgery antiforgery, IServiceProvider services,
        Microsoft.Extensions.Options.IOptions<UploadOptions> options, Microsoft.Extensions.Options.IOptions<AntiforgeryOptions> antiforgeryOptions, CancellationToken ct)
    {
        const string Back = "/reports?uploadError=";
        var limit = options.Value.MaxUploadBytes;
        if (services.GetService(typeof(Apm.Reports.ReportStore)) is not Apm.Reports.ReportStore store)
            return Results.Redirect(Back + Uri.EscapeDataString("no report store is configured"));
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var type)
            || !string.Equals(type.MediaType.Value, "multipart/form-data", StringComparison.OrdinalIgnoreCase)
            || Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(type.Boundary).Value is not { Length: > 0 and <= 200 } boundary)
            return Results.BadRequest("Expected the upload form (multipart/form-data).");
        var reader = new MultipartReader(boundary, context.Request.Body);
        var tokenName = antiforgeryOptions.Value.FormFieldName;
        var first = await reader.ReadNextSectionAsync(ct).ConfigureAwait(false);
        if (first?.AsFormDataSection() is not { } tokenSection || tokenSection.Name != tokenName || antiforgeryOptions.Value.HeaderName is not { } header)
            return Results.BadRequest("The form expired or did not come from this site; reload the reports page.");
        // The token store reads the header before it would read (and buffer) the whole form.
        if (await ReadSmallAsync(tokenSection.Section.Body, ct).ConfigureAwait(false) is not { } token)
            return Results.BadRequest("The form's token is too long.");
        context.Request.Headers[header] = token;
        try
        {
            await antiforgery.ValidateRequestAsync(context).ConfigureAwait(false);
        }
        catch (AntiforgeryValidationException)
        {
            return Results.BadRequest("The form expired or did not come from this site; reload the reports page.");
        }

        if (context.Request.ContentLength > limit + FormOverheadBytes)
            return Results.Redirect(Back + Uri.EscapeDataString($"the file is larger than the limit of {limit} bytes"));
        var file = await reader.ReadNextSectionAsync(ct).ConfigureAwait(false);
        if (file?.AsFileSection() is not { Name: "dump" } dump || dump.FileStream is not { } body)
            return Results.Redirect(Back + Uri.EscapeDataString("choose a .hprof file to upload"));
        var (accepted, _, error) = await ReportUpload.AcceptAsync(body, dump.FileName, context.User.Identity?.Name ?? "dashboard", store, options.Value, ct).ConfigureAwait(false);
        return Results.Redirect(accepted is null ? Back + Uri.EscapeDataString(error!) : "/reports/" + accepted.Id);
    }

    /// <summary>A short form field (at most 4 KiB of UTF-8), or null when it is longer: a field never holds the server's memory.</summary>
    private static async Task<string?> ReadSmallAsync(Stream body, CancellationToken ct)
    {
        var buffer = new byte[4096];
        var n = 0;
        int read;
        while ((read = await body.ReadAsync(buffer.AsMemory(n), ct).ConfigureAwait(false)) > 0)
        {
            n += read;
            if (n == buffer.Length) return null;
        }

        return System.Text.Encoding.UTF8.GetString(buffer, 0, n);
    }

    private static async Task<IResult> RequestHeapDumpAsync(
        [Microsoft.AspNetCore.Mvc.FromForm] string id, [Microsoft.AspNetCore.Mvc.FromForm] string? confirm,
        HttpContext context, JvmQueries jvms, CommandQueries commands, IServiceProvider services, ILoggerFactory loggers, CancellationToken ct)
    {
        var back = "/jvm?id=" + Uri.EscapeDataString(id);
        if (services.GetService(typeof(ICommandSender)) is not ICommandSender sender) return Results.Redirect(back + "&dumpError=" + Uri.EscapeDataString("this process cannot reach the collectors"));
        if (confirm != "yes") return Results.Redirect(back + "&dumpError=" + Uri.EscapeDataString("tick the confirmation first"));
        var (accepted, _, error) = await HeapDumpEndpoints.RequestAsync(id, false, "dashboard", context.User.Identity?.Name ?? "dashboard", jvms, commands, sender,
            loggers.CreateLogger(typeof(DashboardExtensions)), ct).ConfigureAwait(false);
        return Results.Redirect(accepted is null ? back + "&dumpError=" + Uri.EscapeDataString(error!) : back + "&dump=" + accepted.CommandId);
    }

    /// <summary>Only same-site paths ("/x", not "//host" or "/\host") are followed after login: no open redirect.</summary>
    internal static bool IsLocalUrl(string url) =>
        url.Length > 0 && url[0] == '/' && (url.Length == 1 || (url[1] != '/' && url[1] != '\\'));
}
