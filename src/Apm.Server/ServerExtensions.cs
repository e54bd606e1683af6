using System.Net;
using Apm.Influx;
using Apm.Reports;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Apm.Server;

/// <summary>Registers and maps the HTTP side; hosts (the CLI, tests) call these.</summary>
public static class ServerExtensions
{
    /// <summary>API options, auth, and the InfluxDB query client over <paramref name="influx"/>.</summary>
    public static IServiceCollection AddApmApi(this IServiceCollection services, IConfiguration configuration, InfluxOptions influx)
    {
        services.Configure<ApiOptions>(configuration.GetSection(ApiOptions.Section));
        var auth = configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        services.AddSingleton(auth);
        services.AddSingleton(_ => new InfluxQueryClient(influx));
        services.AddSingleton<AlertQueries>();
        services.Configure<UploadOptions>(configuration.GetSection(ReportsSection));
        // Heap-dump triage reports: served when a store directory is configured (apm up sets one under its data directory).
        // One store per process, with the configured retention: the API, the dashboard and the aggregator's reports
        // consumer all use this instance.
        if (CreateReportStore(configuration) is { } store) services.TryAddSingleton(store);
        services.AddSingleton<JvmQueries>();
        services.TryAddSingleton(_ => new InfluxWriter(influx));
        services.AddSingleton<CommandQueries>();
        return services;
    }

    /// <summary>The configuration section of the report store and of uploads.</summary>
    public const string ReportsSection = "Apm:Reports";

    /// <summary>
    /// The report store at <c>Apm:Reports:Directory</c> with the retention of <c>Apm:Reports</c> (<c>MaxReports</c>,
    /// <c>MaxAge</c>), or null when no directory is configured.
    /// </summary>
    public static ReportStore? CreateReportStore(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(ReportsSection);
        return section["Directory"] is { Length: > 0 } directory
            ? new ReportStore(directory, section.Get<ReportStoreOptions>() ?? new ReportStoreOptions())
            : null;
    }

    /// <summary>Adds the API key check (when configured) and maps the endpoints.</summary>
    public static WebApplication UseApmApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseMiddleware<ApiKeyMiddleware>();
        app.MapApmApi();
        return app;
    }

    /// <summary>
    /// Security by default: listening on anything but loopback needs authentication configured.
    /// Returns the offending address, or null when the addresses are acceptable.
    /// </summary>
    public static string? FindUnsafeAddress(IEnumerable<string> urls, AuthOptions auth)
    {
        ArgumentNullException.ThrowIfNull(auth);
        if (auth.Enabled) return null;
        foreach (var url in urls)
        {
            var host = url.Replace("://+", "://0.0.0.0", StringComparison.Ordinal).Replace("://*", "://0.0.0.0", StringComparison.Ordinal);
            if (!Uri.TryCreate(host, UriKind.Absolute, out var uri)) return url;
            if (uri.Host == "localhost") continue;
            if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) || !IPAddress.IsLoopback(ip)) return url;
        }

        return null;
    }
}
