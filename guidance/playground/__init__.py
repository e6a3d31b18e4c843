"""The playground layer over the library: tasks, live previews, views, exports, stops and the app's handlers."""
