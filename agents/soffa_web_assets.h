/*  soffa_web_assets: the stylesheet and the script of soffa-web, the only
 *  files it serves without a session (/app.css, /app.js). Self-contained:
 *  no external assets, nothing inline (the Content-Security-Policy allows
 *  scripts and styles from the server itself only). */
#ifndef SOFFA_WEB_ASSETS_H
#define SOFFA_WEB_ASSETS_H

extern const char soffa_web_app_css[];
extern const char soffa_web_app_js[];

#endif
